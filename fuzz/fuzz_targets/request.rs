//! The request parsers (query string and JSON body): any input is either refused with a
//! 422 or parsed into a request that the crate writes back in both forms and reads back
//! unchanged.
#![no_main]

use faas_logs::Request;
use libfuzzer_sys::fuzz_target;

fn round_trip(request: &Request) {
    let query = request.to_query();
    let back = Request::from_query(&query).unwrap_or_else(|e| panic!("{query:?} refused: {e}"));
    assert_eq!(&back, request, "through {query:?}");
    let json = request.to_json();
    let back =
        Request::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{json} refused: {e}"));
    assert_eq!(&back, request, "through {json}");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        match Request::from_query(query) {
            Ok(request) => round_trip(&request),
            Err(e) => assert_eq!(e.status(), 422, "{e}"),
        }
    }
    match Request::from_json(data) {
        Ok(request) => round_trip(&request),
        Err(e) => assert_eq!(e.status(), 422, "{e}"),
    }
});
