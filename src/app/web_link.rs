//! The phone page's requests (src/web), mapped to the inputs a button or an
//! MQTT command already makes.

use std::time::Instant;

use super::{selling, Driver};
use crate::show::{Command, Input};
use crate::web::WebRequest;

impl Driver {
    pub(super) fn on_web(&mut self, req: WebRequest) {
        match req {
            WebRequest::GoLive => self.pending.push_back(Input::Command(Command::GoLive)),
            WebRequest::EndShow => self.pending.push_back(Input::Command(Command::EndShow)),
            // A tap tags as the product's physical button does.
            WebRequest::Tag { product_id } => {
                let now = Instant::now();
                let ctx = self.show_context(now);
                let outputs = self
                    .selling
                    .tag(now, &product_id, selling::Origin::Button, ctx);
                self.sell(outputs);
            }
            // The key file is already written; the running config takes the
            // new server and key so that the next connect uses them.
            WebRequest::SetPush {
                destination,
                server,
                key,
                reply,
            } => {
                let known = self.media.set_push(&destination, &server, key.clone());
                if let Some(d) = self
                    .config
                    .destinations
                    .iter_mut()
                    .find(|d| d.name == destination)
                {
                    d.url = server;
                    d.key = Some(key);
                }
                let _ = reply.send(if known {
                    Ok(())
                } else {
                    Err("no such destination".into())
                });
            }
            // Already checked and saved in the local layer by the page.
            WebRequest::EditProduct { edit, reply } => {
                let edits = [(edit.id.clone(), edit)].into_iter().collect();
                crate::web::products::overlay(&mut self.config.products, &edits);
                self.selling.update_catalog(&self.config);
                let _ = reply.send(Ok(()));
            }
        }
    }
}
