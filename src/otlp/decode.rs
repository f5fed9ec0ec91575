//! From a POST's bytes to log records: its content type, its compression (bounded
//! however well it compresses), and its protobuf (walked a record at a time) or
//! OTLP/JSON.

use std::borrow::Cow;
use std::io::Read;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use super::mapping::Mapper;

/// How a request's body is written, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`: OTLP/JSON.
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names, its parameters (`; charset=utf-8`) aside;
    /// `None` for any other type.
    pub(crate) fn of(content_type: &str) -> Option<Encoding> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf")
            || essence.eq_ignore_ascii_case("application/protobuf")
        {
            Some(Encoding::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of answers in this encoding.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Undecodable {
    /// Its `Content-Encoding` is not one this receiver reads.
    Compression(String),
    /// Decompressed, it is larger than the limit.
    TooLarge(usize),
    /// Its bytes are not what they claim to be; the text says how.
    Malformed(String),
}

/// The body's bytes without their `Content-Encoding` (`gzip`, `deflate`, `identity` or
/// none), at most `limit` of them.
pub(crate) fn decompress<'a>(
    encoding: Option<&str>,
    body: &'a [u8],
    limit: usize,
) -> Result<Cow<'a, [u8]>, Undecodable> {
    let encoding = encoding.map(str::trim).unwrap_or("");
    let reader: Box<dyn Read + '_> =
        if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
            return Ok(Cow::Borrowed(body));
        } else if encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip") {
            Box::new(flate2::read::MultiGzDecoder::new(body))
        } else if encoding.eq_ignore_ascii_case("deflate") {
            Box::new(flate2::read::ZlibDecoder::new(body))
        } else {
            return Err(Undecodable::Compression(encoding.to_owned()));
        };
    // One byte past the limit tells a body at the limit from one over it, without
    // inflating a bomb any further.
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            Undecodable::Malformed(format!("its {encoding} compression is broken: {e}"))
        })?;
    if out.len() > limit {
        return Err(Undecodable::TooLarge(limit));
    }
    Ok(Cow::Owned(out))
}

/// Decodes the request the bytes hold and maps its records with `mapper`, in order.
pub(crate) fn decode_into(
    encoding: Encoding,
    bytes: &[u8],
    mapper: &mut Mapper<'_>,
) -> Result<(), Undecodable> {
    match encoding {
        Encoding::Protobuf => records(bytes, mapper)
            .map_err(|e| Undecodable::Malformed(format!("not an OTLP protobuf log export: {e}"))),
        Encoding::Json => {
            let request: ExportLogsServiceRequest = serde_json::from_slice(bytes)
                .map_err(|e| Undecodable::Malformed(format!("not an OTLP/JSON log export: {e}")))?;
            mapper.request(request);
            Ok(())
        }
    }
}

/// A protobuf `ExportLogsServiceRequest`, walked rather than decoded whole: each log
/// record is decoded, mapped and dropped in turn, so that a large request never holds
/// all its records twice (as records and as messages), and the allocator sees one
/// record's worth come and go at a time. Only the fields read are checked; the rest are
/// skipped as protobuf skips unknown fields.
fn records(request: &[u8], mapper: &mut Mapper<'_>) -> Result<(), Malformed> {
    for field in Fields(request) {
        // ExportLogsServiceRequest.resource_logs = 1.
        if let (1, Some(resource_logs)) = field? {
            // A resource may come after its records, and be split in parts: merge its
            // parts first, then read the records.
            let mut resource = Resource::default();
            for field in Fields(resource_logs) {
                // ResourceLogs.resource = 1.
                if let (1, Some(part)) = field? {
                    resource.merge(part)?;
                }
            }
            let who = mapper.origin(&resource.attributes);
            for field in Fields(resource_logs) {
                // ResourceLogs.scope_logs = 2.
                if let (2, Some(scope_logs)) = field? {
                    for field in Fields(scope_logs) {
                        // ScopeLogs.log_records = 2.
                        if let (2, Some(record)) = field? {
                            mapper.record(&who, LogRecord::decode(record)?);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// What is wrong with a protobuf body.
struct Malformed(std::borrow::Cow<'static, str>);

impl From<&'static str> for Malformed {
    fn from(why: &'static str) -> Self {
        Malformed(why.into())
    }
}

impl From<prost::DecodeError> for Malformed {
    fn from(e: prost::DecodeError) -> Self {
        Malformed(e.to_string().into())
    }
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The fields of a protobuf message: each field's number, and its bytes when it is
/// length-delimited (`None` for the other wire types, which are skipped).
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Option<&'a [u8]>), Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.0 = &[]; // one error, then the end
        }
        Some(field)
    }
}

impl<'a> Fields<'a> {
    fn field(&mut self) -> Result<(u64, Option<&'a [u8]>), Malformed> {
        let key = self.varint()?;
        let (number, wire_type) = (key >> 3, key & 7);
        if number == 0 {
            return Err(Malformed::from("a field numbered 0"));
        }
        let skip = match wire_type {
            0 => {
                self.varint()?;
                0
            }
            1 => 8,
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| Malformed::from("a length past the buffer"))?;
                let bytes = self.take(len)?;
                return Ok((number, Some(bytes)));
            }
            5 => 4,
            _ => return Err(Malformed::from("a group or an unknown wire type")),
        };
        self.take(skip)?;
        Ok((number, None))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], Malformed> {
        if len > self.0.len() {
            return Err(Malformed::from("a field past the end of its message"));
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for (i, &byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Ok(value);
            }
        }
        Err(Malformed::from("a varint cut off or longer than 10 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn content_types_are_read_by_their_essence() {
        assert_eq!(
            Encoding::of("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::of("Application/JSON; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::of("text/plain"), None);
        assert_eq!(Encoding::of(""), None);
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![b'a'; 10 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert_eq!(
            decompress(Some("gzip"), &bomb, 1 << 20),
            Err(Undecodable::TooLarge(1 << 20))
        );
        assert_eq!(
            decompress(Some("gzip"), &bomb, 10 << 20).map(|b| b.len()),
            Ok(10 << 20)
        );
        assert!(matches!(
            decompress(Some("gzip"), &bomb[..bomb.len() / 2], 10 << 20),
            Err(Undecodable::Malformed(_))
        ));
        assert_eq!(
            decompress(Some("br"), b"", 10),
            Err(Undecodable::Compression("br".into()))
        );
    }
}
