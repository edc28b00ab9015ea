//! Product names and prices edited on the phone: a local layer, kept in
//! `STATE_DIR/web/products.toml`, laid over whatever config runs (the file,
//! then the fleet's group and device layers) by product id. It changes only
//! `name` and `unit_price` of products that exist; an edit for an id no
//! layer has is kept but does nothing. The pure parts (checking an edit,
//! laying edits over a config, the file's text) are apart from the two
//! small I/O helpers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ProductConfig};
use crate::products::price::Decimal;

/// Longest name a lower third can hold on a 720p picture at its font size.
pub const MAX_NAME: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    pub id: String,
    pub name: String,
    pub unit_price: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    products: Vec<Edit>,
}

/// Edits by product id.
pub type Edits = BTreeMap<String, Edit>;

/// Why an edit was refused (texts for the page; they echo nothing).
pub fn check(edit: &Edit, currency: &str) -> Result<(), &'static str> {
    let name = edit.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err("the name must be 1 to 40 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("the name must be on one line");
    }
    let price = Decimal::parse(edit.unit_price.trim())
        .map_err(|_| "the price must be a number such as 30.00")?;
    if !price.is_positive() {
        return Err("the price must be above zero");
    }
    if price.scale() > crate::config::validate::minor_digits(currency) {
        return Err("the price has more decimals than the currency");
    }
    Ok(())
}

/// Lays `edits` over the config's products, by id.
pub fn overlay(products: &mut [ProductConfig], edits: &Edits) {
    for p in products {
        if let Some(e) = edits.get(&p.id) {
            p.name = e.name.trim().to_string();
            p.unit_price = e.unit_price.trim().to_string();
        }
    }
}

pub fn parse(text: &str) -> Edits {
    toml::from_str::<File>(text)
        .map(|f| f.products.into_iter().map(|e| (e.id.clone(), e)).collect())
        .unwrap_or_default()
}

pub fn render(edits: &Edits) -> String {
    let file = File {
        products: edits.values().cloned().collect(),
    };
    toml::to_string(&file).unwrap_or_default()
}

pub fn file(state_dir: &str) -> PathBuf {
    Path::new(state_dir).join("web").join("products.toml")
}

/// The saved edits laid over `config` (at start, and over every fleet
/// push). A missing or unreadable file is no edits.
pub fn apply_saved(config: &mut Config) {
    let text = std::fs::read_to_string(file(&config.state_dir)).unwrap_or_default();
    let edits = parse(&text);
    // An edit that no longer passes (a currency changed by a push) is left out.
    let valid: Edits = edits
        .into_iter()
        .filter(|(id, e)| {
            config
                .products
                .iter()
                .any(|p| &p.id == id && check(e, &p.currency).is_ok())
        })
        .collect();
    overlay(&mut config.products, &valid);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product() -> ProductConfig {
        ProductConfig {
            id: "mussels".into(),
            name: "Mussels".into(),
            unit: "kg".parse().unwrap(),
            unit_price: "30.00".into(),
            currency: "CNY".into(),
            button_pin: None,
        }
    }

    fn edit(name: &str, price: &str) -> Edit {
        Edit {
            id: "mussels".into(),
            name: name.into(),
            unit_price: price.into(),
        }
    }

    #[test]
    fn checks_names_and_prices() {
        let p = "CNY";
        assert!(check(&edit("新鲜青口", "32.50"), p).is_ok());
        assert!(check(&edit(" ", "1"), p).is_err());
        assert!(check(&edit(&"x".repeat(41), "1"), p).is_err());
        assert!(check(&edit("a\nb", "1"), p).is_err());
        for bad in ["", "-1", "0", "0.00", "1.005", "1e3", "abc", "1,5"] {
            assert!(check(&edit("a", bad), p).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn overlays_by_id_and_round_trips_the_file() {
        let mut edits = Edits::new();
        edits.insert("mussels".into(), edit(" Big mussels ", "35.00"));
        edits.insert(
            "gone".into(),
            Edit {
                id: "gone".into(),
                name: "x".into(),
                unit_price: "1".into(),
            },
        );
        let mut products = vec![product()];
        overlay(&mut products, &edits);
        assert_eq!(
            (products[0].name.as_str(), products[0].unit_price.as_str()),
            ("Big mussels", "35.00")
        );
        assert_eq!(parse(&render(&edits)), edits);
        assert!(parse("not toml [").is_empty());
    }

    #[test]
    fn saved_edits_survive_a_restart_and_bad_ones_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            state_dir: dir.path().display().to_string(),
            ..Config::default()
        };
        config.products.push(product());
        let mut edits = Edits::new();
        edits.insert("mussels".into(), edit("Big mussels", "35.00"));
        std::fs::create_dir_all(dir.path().join("web")).unwrap();
        std::fs::write(file(&config.state_dir), render(&edits)).unwrap();
        let mut c = config.clone();
        apply_saved(&mut c);
        assert_eq!(c.products[0].unit_price, "35.00");
        edits.insert("mussels".into(), edit("Big mussels", "35.001"));
        std::fs::write(file(&config.state_dir), render(&edits)).unwrap();
        let mut c = config.clone();
        apply_saved(&mut c);
        assert_eq!(c.products[0].unit_price, "30.00");
    }
}
