//! Fleet layers: the local file overlaid by TOML layers pushed from the fleet
//! manager (groups in order, then the device's own).
//!
//! Precedence is defaults < file < layers in order. Tables merge key by key;
//! everything else, arrays (`destinations`, `products`) included, is replaced
//! whole, so a layer that sets `destinations` says the complete list.

use std::path::Path;

use super::load::{check_sources, Depth};
use super::problem::Problem;
use super::schema::Config;

/// Overlays `layer` on `base`: tables merge key by key, other values replace.
pub fn merge(base: &mut toml::Table, layer: &toml::Table) {
    for (key, value) in layer {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(l)) => merge(b, l),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// `file_src` with `layers` merged over it, in order, as a [`Config`]
/// (defaults fill what none of them sets). Keys, types, ranges and choice
/// words are checked, not the other values; see [`check_layers`]. Problems in a layer say which
/// (`layer 1` is the first).
pub fn load_layers(file_src: &str, layers: &[&str]) -> Result<Config, Vec<Problem>> {
    check_sources(&sources(file_src, layers), Depth::Load).into_result()
}

/// [`load_layers`], then stream keys (relative to `config_dir`) and validation:
/// the same checks as `check-config`, for a fleet push.
pub fn check_layers(
    file_src: &str,
    layers: &[&str],
    config_dir: &Path,
) -> Result<Config, Vec<Problem>> {
    check_sources(&sources(file_src, layers), Depth::Full(config_dir)).into_result()
}

fn sources<'a>(file_src: &'a str, layers: &[&'a str]) -> Vec<&'a str> {
    std::iter::once(file_src)
        .chain(layers.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(src: &str) -> toml::Table {
        toml::from_str(src).unwrap()
    }

    #[test]
    fn tables_merge_key_by_key() {
        let mut base = table("[video]\nwidth = 1280\nheight = 720\n");
        merge(&mut base, &table("[video]\nwidth = 640\n"));
        assert_eq!(base, table("[video]\nwidth = 640\nheight = 720\n"));
    }

    #[test]
    fn arrays_and_scalars_are_replaced_whole() {
        let mut base = table(
            "device_id = \"a\"\n[[products]]\nid = \"x\"\n[[products]]\nid = \"y\"\n[fleet]\ngroups = [\"n\", \"s\"]\n",
        );
        merge(
            &mut base,
            &table("device_id = \"b\"\n[[products]]\nid = \"z\"\n[fleet]\ngroups = [\"e\"]\n"),
        );
        assert_eq!(
            base,
            table("device_id = \"b\"\n[[products]]\nid = \"z\"\n[fleet]\ngroups = [\"e\"]\n")
        );
    }

    #[test]
    fn a_table_replaces_a_scalar_and_back() {
        let mut base = table("a = 1\n[b]\nc = 2\n");
        merge(&mut base, &table("b = 3\n[a]\nc = 4\n"));
        assert_eq!(base, table("b = 3\n[a]\nc = 4\n"));
    }

    #[test]
    fn defaults_then_file_then_layers_in_order() {
        let file = "device_id = \"farm-01\"\n[video]\nwidth = 1920\nheight = 1080\n";
        let group = "[video]\nwidth = 1280\nframerate = 25\n";
        let device = "[video]\nframerate = 20\n";
        let c = load_layers(file, &[group, device]).unwrap();
        assert_eq!(c.device_id, "farm-01");
        assert_eq!(c.video.width, 1280);
        assert_eq!(c.video.height, 1080);
        assert_eq!(c.video.framerate, 20);
        assert_eq!(c.video.bitrate_kbps, Config::default().video.bitrate_kbps);
    }

    #[test]
    fn layer_destinations_replace_the_files() {
        let file = "[[destinations]]\nname = \"a\"\nurl = \"rtmp://h/live\"\n[[destinations]]\nname = \"b\"\nurl = \"rtmp://h/live\"\n";
        let layer = "[[destinations]]\nname = \"c\"\nurl = \"srt://h:9000\"\n";
        let c = load_layers(file, &[layer]).unwrap();
        let names: Vec<_> = c.destinations.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["c"]);
    }

    #[test]
    fn problems_point_at_the_layer_that_wrote_the_key() {
        let file = "[video]\nwidth = 1280\n";
        let layer = "\n[video]\nwidht = 640\n";
        let ps = load_layers(file, &[layer]).unwrap_err();
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].path, "video.widht");
        assert_eq!(ps[0].line, Some(3));
        assert!(
            ps[0].message.starts_with("in layer 1:"),
            "{}",
            ps[0].message
        );

        let ps = load_layers(file, &["[video\n"]).unwrap_err();
        assert!(ps[0].message.starts_with("in layer 1:"));
        assert_eq!(ps[0].line, Some(1));
    }

    /// A push goes through the same checks as `check-config`: a number past
    /// its range is refused here, not left to overflow at the first tag.
    #[test]
    fn a_pushed_number_past_its_range_is_refused() {
        let layer = "[scale]\noverlay_s = 9223372036854775807\n";
        let ps = check_layers("", &[layer], Path::new(".")).unwrap_err();
        assert_eq!(ps.len(), 1, "{ps:?}");
        assert_eq!(ps[0].path, "scale.overlay_s");
        assert_eq!(ps[0].line, Some(2));
        assert!(
            ps[0].message.starts_with("in layer 1: "),
            "{}",
            ps[0].message
        );
        let ps = crate::config::check_str(layer, Path::new(".")).unwrap_err();
        assert_eq!(ps[0].path, "scale.overlay_s");
    }

    #[test]
    fn check_layers_validates_the_merged_config() {
        let file = "[video]\nsource = \"test\"\n";
        let ps = check_layers(file, &["[video]\nwidth = 641\n"], Path::new(".")).unwrap_err();
        assert_eq!(ps.len(), 1);
        assert_eq!(ps[0].path, "video.width");
        assert_eq!(ps[0].line, Some(2));
        assert!(check_layers(file, &["[video]\nwidth = 640\n"], Path::new(".")).is_ok());
    }
}
