//! The two pages: the login, and the phone page. Plain HTML with a little
//! inline script and style (no CDN, no build chain); both languages ride in
//! the page, the server only picks which by the browser's `Accept-Language`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    fn as_str(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

/// The language the browser prefers among ours; English when it names neither.
pub fn pick_lang(accept_language: &str) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for item in accept_language.split(',').take(32) {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let lang = if tag == "zh" || tag.starts_with("zh-") {
            Lang::Zh
        } else if tag == "en" || tag.starts_with("en-") {
            Lang::En
        } else {
            continue;
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::En, |(_, l)| l)
}

const LOGIN: &str = include_str!("login.html");
const MAIN: &str = include_str!("main.html");

pub fn login(lang: Lang, has_code: bool) -> String {
    LOGIN
        .replace("{{LANG}}", lang.as_str())
        .replace("{{HAS_CODE}}", if has_code { "1" } else { "0" })
}

/// `csrf` is hex (from [`super::auth::token`]): safe inside an attribute.
pub fn main(lang: Lang, csrf: &str) -> String {
    MAIN.replace("{{LANG}}", lang.as_str())
        .replace("{{CSRF}}", csrf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_preferred_of_our_languages() {
        assert_eq!(pick_lang("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(pick_lang("en-US,en;q=0.9,zh-CN;q=0.8"), Lang::En);
        assert_eq!(pick_lang("fr-FR,zh-TW;q=0.5"), Lang::Zh);
        assert_eq!(pick_lang("de"), Lang::En);
        assert_eq!(pick_lang(""), Lang::En);
        assert_eq!(pick_lang("en;q=0.2, zh;q=0.7"), Lang::Zh);
        assert_eq!(pick_lang("zh;q=0"), Lang::En);
    }
}
