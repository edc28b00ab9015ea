//! The lower-third template language of `scale.overlay_template` and
//! `scale.overlay_template_piece`: plain text with placeholders `{name}`,
//! `{weight}`, `{unit_price}`, `{price}`, `{currency}`, `{unit}`,
//! `{product_id}`; `{{` and `}}` are literal braces.
//!
//! It lives with the config because what a template may say is part of the
//! config language: validation refuses an unknown placeholder before it could
//! surprise anyone on air. `products::overlay` renders the parsed pieces.

/// The placeholders a template may use.
pub const FIELDS: &[&str] = &[
    "name",
    "weight",
    "unit_price",
    "price",
    "currency",
    "unit",
    "product_id",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{0}}}; use {known}", known = known())]
    Unknown(String),
    #[error("a '{{' is not closed; write {{{{ for a literal brace")]
    Unclosed,
    #[error("a '}}' has no '{{'; write }}}} for a literal brace")]
    Stray,
}

fn known() -> String {
    FIELDS
        .iter()
        .map(|f| format!("{{{f}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A parsed template part: literal text (braces already unescaped) or a
/// placeholder's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Field(&'a str),
}

/// The pieces of `template`, or what is wrong with it (an unknown name is cut
/// to 32 characters: it is echoed to the technician).
pub fn parse(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        let (text, tail) = rest.split_at(i);
        if !text.is_empty() {
            out.push(Piece::Text(text));
        }
        if let Some(t) = tail.strip_prefix("{{") {
            out.push(Piece::Text("{"));
            rest = t;
        } else if let Some(t) = tail.strip_prefix("}}") {
            out.push(Piece::Text("}"));
            rest = t;
        } else if let Some(t) = tail.strip_prefix('{') {
            let end = t.find('}').ok_or(TemplateError::Unclosed)?;
            let (name, t) = t.split_at(end);
            if !FIELDS.contains(&name) {
                return Err(TemplateError::Unknown(name.chars().take(32).collect()));
            }
            out.push(Piece::Field(name));
            rest = t.get(1..).unwrap_or("");
        } else {
            return Err(TemplateError::Stray);
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// For config validation: `Ok` when [`parse`] accepts `template`.
pub fn validate_template(template: &str) -> Result<(), TemplateError> {
    parse(template).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_fields_and_escaped_braces() {
        assert_eq!(
            parse("{{a}} {price}").unwrap(),
            [
                Piece::Text("{"),
                Piece::Text("a"),
                Piece::Text("}"),
                Piece::Text(" "),
                Piece::Field("price"),
            ]
        );
        let long = format!("{{{}}}", "x".repeat(100));
        assert_eq!(
            parse(&long).unwrap_err(),
            TemplateError::Unknown("x".repeat(32))
        );
    }
}
