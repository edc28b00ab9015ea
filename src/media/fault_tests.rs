use super::*;
use gstreamer::prelude::*;

fn err<T: glib::error::ErrorDomain>(kind: T) -> glib::Error {
    glib::Error::new(kind, "message")
}

#[test]
fn resource_kinds_are_classified_by_kind_not_words() {
    crate::media::init_for_tests();
    use gst::ResourceError as R;
    let cases = [
        (R::OpenRead, Fault::Unreachable),
        (R::OpenWrite, Fault::Unreachable),
        (R::NotFound, Fault::NotFound),
        (R::Busy, Fault::Busy),
        (R::NoSpaceLeft, Fault::NoSpace),
        (R::NotAuthorized, Fault::Refused),
        (R::Write, Fault::Broken),
        (R::Read, Fault::Broken),
        (R::Settings, Fault::Other),
        (R::Failed, Fault::Other),
    ];
    for (kind, want) in cases {
        assert_eq!(classify(&err(kind), None), want, "{kind:?}");
    }
    // The words of the message play no part: "refused" in a write error
    // is still a broken connection.
    let words = glib::Error::new(R::Write, "Connection refused, timed out, unreachable");
    assert_eq!(classify(&words, None), Fault::Broken);
}

#[test]
fn a_failed_connect_is_told_by_its_gio_code() {
    crate::media::init_for_tests();
    let failed = err(gst::ResourceError::Failed);
    // rtmp2sink 1.22 and later releases write the code differently.
    for (debug, want) in [
        ("gstrtmp2sink.c(1117): send_connect_error (): /GstPipeline:p/GstRtmp2Sink:sink:\ndomain g-io-error-quark, code 34", Fault::Refused),
        ("domain g-io-error-quark, code 24", Fault::Unreachable),
        ("domain g-io-error-quark, code 37", Fault::Unreachable),
        ("error g-io-error-quark:39: Could not connect", Fault::Unreachable),
        ("error g-io-error-quark:44: Broken pipe", Fault::Refused),
        ("domain g-resolver-error-quark, code 0", Fault::Other),
        ("domain g-io-error-quark, code", Fault::Other),
        ("domain g-io-error-quark, code 99999999999999999999", Fault::Other),
        ("", Fault::Other),
    ] {
        assert_eq!(classify(&failed, Some(debug)), want, "{debug:?}");
    }
    // The code counts only for the catch-all kind.
    assert_eq!(
        classify(
            &err(gst::ResourceError::Write),
            Some("domain g-io-error-quark, code 39")
        ),
        Fault::Broken
    );
}

#[test]
fn core_stream_and_foreign_domains() {
    crate::media::init_for_tests();
    assert_eq!(
        classify(&err(gst::CoreError::Negotiation), None),
        Fault::Format
    );
    assert_eq!(
        classify(&err(gst::CoreError::MissingPlugin), None),
        Fault::Format
    );
    assert_eq!(
        classify(&err(gst::CoreError::StateChange), None),
        Fault::Other
    );
    assert_eq!(
        classify(&err(gst::StreamError::Decode), None),
        Fault::Format
    );
    assert_eq!(classify(&err(gst::StreamError::Failed), None), Fault::Other);
    assert_eq!(classify(&err(glib::FileError::Noent), None), Fault::Other);
    assert_eq!(classify(&err(gst::LibraryError::Init), None), Fault::Other);
}

#[test]
fn only_unreachable_is_worth_a_probe() {
    assert!(Fault::Unreachable.server_unreachable());
    for f in [
        Fault::Refused,
        Fault::Broken,
        Fault::Other,
        Fault::EndOfClip,
    ] {
        assert!(!f.server_unreachable(), "{f:?}");
    }
}

/// The first error a real rtmp2sink posts when it streams to `port`.
fn rtmp2sink_error(port: u16) -> Fault {
    crate::media::init_for_tests();
    // No buffer is ever pushed: rtmp2sink connects as it starts, and its
    // render must not see a buffer that is no FLV tag (GStreamer 1.22
    // crashes on an empty one).
    let desc = format!("appsrc ! rtmp2sink location=rtmp://127.0.0.1:{port}/live/k");
    let pipeline = gst::parse::launch(&desc).expect("pipeline");
    let bus = pipeline.bus().expect("bus");
    pipeline.set_state(gst::State::Playing).ok();
    let msg = bus.timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).ok();
    let msg = msg.expect("rtmp2sink posted no error in 10 s");
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!("filtered on errors");
    };
    let debug = e.debug().map(|d| d.to_string());
    classify(&e.error(), debug.as_deref())
}

/// A port with nothing listening: the kernel refuses the connect.
#[test]
fn real_rtmp2sink_to_a_closed_port_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    assert_eq!(rtmp2sink_error(port), Fault::Unreachable);
}

/// A server that takes the connection and closes it at once (as nginx-rtmp
/// does with a publish it refuses): it answers, so it is not unreachable.
#[test]
fn real_rtmp2sink_to_a_server_that_hangs_up_is_refused() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        if let Ok((conn, _)) = listener.accept() {
            drop(conn);
        }
    });
    assert_eq!(rtmp2sink_error(port), Fault::Refused);
    let _ = server.join();
}
