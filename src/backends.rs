//! Back-end tables (librespot style): a name in the config picks one entry of
//! a `&[(&str, builder)]` table; an unknown name gets the list of known ones.

/// The builder named `name`, or the comma-separated names that exist.
pub fn lookup<B: Copy>(table: &[(&str, B)], name: &str) -> Result<B, String> {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .ok_or_else(|| table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn finds_or_lists() {
        let table: &[(&str, u8)] = &[("a", 1), ("b", 2)];
        assert_eq!(lookup(table, "b"), Ok(2));
        assert_eq!(lookup(table, "c"), Err("a, b".to_string()));
    }
}
