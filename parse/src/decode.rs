//! Decompression with a size cap: the one way compressed input is opened.
//!
//! A CloudTrail delivery is a few megabytes of gzip; a hostile or broken object can be a gzip
//! bomb (kilobytes that inflate to gigabytes) or be cut short. Every decompression goes through
//! [`gunzip_capped`], which stops at the cap and tells truncation from corruption, so one bad
//! object is set aside with its reason instead of taking the process down.

use std::io::Read;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::read::MultiGzDecoder;

/// Default cap on the decompressed size of one object (CloudTrail files are far smaller).
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 512 * 1024 * 1024;

/// Why a compressed object could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The stream ended before the gzip trailer.
    #[error("truncated gzip: the stream ends after {decompressed} decompressed bytes")]
    Truncated {
        /// Bytes decompressed before the end.
        decompressed: u64,
    },
    /// The stream inflates past the cap (a gzip bomb, or a cap set too low).
    #[error("gzip inflates past the {limit}-byte cap")]
    TooLarge {
        /// The cap in force.
        limit: u64,
    },
    /// The bytes are not valid gzip.
    #[error("corrupt gzip: {0}")]
    Corrupt(String),
}

/// Whether `bytes` start with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Decompresses gzip (including concatenated members) up to `limit` bytes of output.
pub fn gunzip_capped(bytes: &[u8], limit: u64) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut reader = MultiGzDecoder::new(bytes).take(limit.saturating_add(1));
    match reader.read_to_end(&mut out) {
        Ok(_) if out.len() as u64 > limit => Err(DecodeError::TooLarge { limit }),
        Ok(_) => Ok(out),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(DecodeError::Truncated {
            decompressed: out.len() as u64,
        }),
        Err(e) => Err(DecodeError::Corrupt(e.to_string())),
    }
}

/// Decompresses `bytes` if they are gzip, else returns them as they are.
pub fn maybe_gunzip(bytes: Vec<u8>, limit: u64) -> Result<Vec<u8>, DecodeError> {
    if is_gzip(&bytes) {
        gunzip_capped(&bytes, limit)
    } else {
        Ok(bytes)
    }
}

/// About how many bytes an object holds once decompressed: a gzip member's own record of its
/// size (the last four bytes, modulo 4 GiB), else its length. For bounding micro-batches by
/// what they take in memory, not by what they take on disk; never trusted for the cap itself.
pub fn decompressed_size(stored: u64, gzip_trailer: Option<[u8; 4]>) -> u64 {
    match gzip_trailer {
        Some(trailer) => u64::from(u32::from_le_bytes(trailer)).max(stored),
        None => stored,
    }
}

/// The last four bytes of `bytes` if it is gzip (see [`decompressed_size`]).
pub fn gzip_trailer(bytes: &[u8]) -> Option<[u8; 4]> {
    if !is_gzip(bytes) || bytes.len() < 18 {
        return None;
    }
    bytes[bytes.len() - 4..].try_into().ok()
}

/// `awslogs.data`: base64 of gzip of the subscription's JSON, decompressed under a cap.
pub fn decode_subscription(data: &str, max_decompressed: u64) -> Result<Vec<u8>, String> {
    let compressed = STANDARD
        .decode(data.trim())
        .map_err(|e| format!("awslogs.data is not base64: {e}"))?;
    gunzip_capped(&compressed, max_decompressed)
        .map_err(|e| format!("awslogs.data does not decompress: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gzip_member_says_how_large_it_inflates() {
        let text = vec![b'x'; 100_000];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &text).unwrap_or_else(|e| panic!("{e}"));
        let gz = gz.finish().unwrap_or_else(|e| panic!("{e}"));
        assert!(gz.len() < 1_000);
        assert_eq!(
            decompressed_size(gz.len() as u64, gzip_trailer(&gz)),
            100_000
        );
        assert_eq!(decompressed_size(5, gzip_trailer(b"plain")), 5);
    }
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap_or_else(|e| panic!("{e}"));
        enc.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn round_trip_and_plain_passthrough() {
        assert_eq!(gunzip_capped(&gzip(b"hello"), 100), Ok(b"hello".to_vec()));
        assert_eq!(maybe_gunzip(b"plain".to_vec(), 100), Ok(b"plain".to_vec()));
    }

    #[test]
    fn truncated_gzip_is_named() {
        let full = gzip(&vec![b'x'; 100_000]);
        let cut = &full[..full.len() / 2];
        assert!(matches!(
            gunzip_capped(cut, 1 << 20),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn bomb_stops_at_the_cap() {
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        assert_eq!(
            gunzip_capped(&bomb, 1024 * 1024),
            Err(DecodeError::TooLarge { limit: 1024 * 1024 })
        );
    }

    #[test]
    fn garbage_after_magic_is_corrupt() {
        let result = gunzip_capped(&[0x1f, 0x8b, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 100);
        assert!(result.is_err());
    }

    #[test]
    fn subscription_data_that_is_not_base64_or_gzip_says_so() {
        let not_base64 = decode_subscription("***", 1024);
        assert!(
            not_base64.as_ref().is_err_and(|e| e.contains("not base64")),
            "{not_base64:?}"
        );
        let not_gzip = decode_subscription(&STANDARD.encode("{}"), 1024);
        assert!(
            not_gzip
                .as_ref()
                .is_err_and(|e| e.contains("does not decompress")),
            "{not_gzip:?}"
        );
    }
}
