//! Which certificate authorities `rtmps://` destinations trust.
//!
//! `rtmp2sink` connects through GIO's `GSocketClient`; its TLS comes from
//! glib-networking (GnuTLS on Debian, the `glib-networking` package: without
//! it every `rtmps://` connect fails). The server's certificate is checked
//! against the TLS backend's default database, which is the system store
//! (`/etc/ssl/certs/ca-certificates.crt`); GnuTLS reads no environment
//! variable for it (`SSL_CERT_FILE` is OpenSSL's), and `rtmp2sink` has no CA
//! property, only `tls-validation-flags`. So `live.tls_ca_file` replaces the
//! default database for the whole process with the given PEM file
//! (`g_tls_backend_set_default_database`, GLib 2.60): every `rtmps://`
//! destination then trusts exactly the CAs in that file.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::bail;

/// Makes `rtmps://` connections trust the CAs in `pem` (and no others).
/// Call after GStreamer (and so GLib) is initialised.
pub fn trust_only(pem: &Path) -> anyhow::Result<()> {
    let Ok(anchors) = CString::new(pem.as_os_str().as_bytes()) else {
        bail!("{} is not a file name", pem.display());
    };
    // SAFETY: GIO calls with pointers that live across the calls: the default
    // backend is owned by GIO (transfer none); the database is ours
    // (transfer full) until the backend takes its own reference; the error is
    // freed once read.
    unsafe {
        let backend = gio_sys::g_tls_backend_get_default();
        if backend.is_null() || gio_sys::g_tls_backend_supports_tls(backend) == 0 {
            bail!("no TLS backend: install glib-networking (rtmps:// needs it)");
        }
        let mut err: *mut glib_sys::GError = std::ptr::null_mut();
        let db = gio_sys::g_tls_file_database_new(anchors.as_ptr(), &mut err);
        if db.is_null() {
            let why = if err.is_null() || (*err).message.is_null() {
                "unknown error".to_string()
            } else {
                CStr::from_ptr((*err).message)
                    .to_string_lossy()
                    .into_owned()
            };
            if !err.is_null() {
                glib_sys::g_error_free(err);
            }
            bail!(
                "reading the CA certificates in {}: {}",
                pem.display(),
                crate::excerpt::excerpt(&why)
            );
        }
        gio_sys::g_tls_backend_set_default_database(backend, db.cast());
        gobject_sys::g_object_unref(db.cast());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_bad_file_is_an_error_naming_it() {
        crate::media::init_for_tests();
        let err = trust_only(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/ca.pem"),
            "{err:#}"
        );
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "not a certificate").unwrap();
        let err = trust_only(f.path()).unwrap_err();
        assert!(format!("{err:#}").contains("reading the CA"), "{err:#}");
    }
}
