//! The checkpoint bundle: a versioned header with a checksum over the body, then the body.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "DAMSONCK"
//!      8     2  format version, little-endian (3)
//!     10     2  flags (bit 0: the body holds a memory image)
//!     12     8  body length in bytes, little-endian
//!     20     4  CRC-32 of the body, little-endian
//!     24     …  body: the record (postcard), then the memory image if flagged
//! ```
//!
//! A bundle that is too short, truncated, of another format or version, or whose body does not
//! match its checksum is refused with a [`BundleError`] before anything in it is used.

use serde::{Deserialize, Serialize};

/// The first bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"DAMSONCK";
/// The format version this host writes and reads.
/// Version 2: the body is the process record itself (version 1 repeated its fields in a
/// checkpoint type of its own). Version 3: the record holds the signals the process has taken.
pub const VERSION: u16 = 3;
const HEADER_LEN: usize = 24;
const FLAG_IMAGE: u16 = 1;

/// Why bytes are not a usable bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// Not even a header.
    #[error("the bundle is {len} bytes long, shorter than its {HEADER_LEN}-byte header")]
    TooShort {
        /// The bundle's length.
        len: usize,
    },
    /// Not a Damson checkpoint.
    #[error("the bundle does not start with the magic bytes \"DAMSONCK\"")]
    BadMagic,
    /// Written by another version of the format.
    #[error("the bundle has format version {found}; this host reads version {VERSION}")]
    UnknownVersion {
        /// The version in the header.
        found: u16,
    },
    /// Flags this host does not know.
    #[error("the bundle has unknown flags {flags:#06x}")]
    UnknownFlags {
        /// The flags in the header.
        flags: u16,
    },
    /// Shorter than its header says.
    #[error("the bundle is truncated: its header announces {expected} body bytes, {found} follow")]
    Truncated {
        /// The body length the header announces.
        expected: u64,
        /// The bytes that follow the header.
        found: u64,
    },
    /// The body is damaged.
    #[error(
        "the bundle's body fails its checksum (stored {stored:#010x}, computed {computed:#010x})"
    )]
    Checksum {
        /// The CRC-32 in the header.
        stored: u32,
        /// The CRC-32 of the body.
        computed: u32,
    },
    /// The body passed its checksum but does not decode (written by a host with another
    /// record layout).
    #[error("the bundle's body cannot be decoded at byte {offset} of the body: {message}")]
    Decode {
        /// Where decoding stopped, in bytes from the start of the body.
        offset: usize,
        /// What the decoder said.
        message: String,
    },
}

/// The decoded body of a bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Body<R> {
    /// The record (a [`ProcessRecord`](crate::ProcessRecord) for a process's checkpoint).
    pub record: R,
    /// The memory image, if the bundle has one.
    pub image: Option<Vec<u8>>,
}

/// Encode `record` (and an optional memory image) as a bundle.
pub fn encode<R: Serialize>(record: &R, image: Option<&[u8]>) -> Vec<u8> {
    let mut body = postcard::to_stdvec(record).expect("a process record always serialises");
    let mut flags = 0;
    if let Some(image) = image {
        flags |= FLAG_IMAGE;
        body.extend_from_slice(image);
    }
    let mut bundle = Vec::with_capacity(HEADER_LEN + body.len());
    bundle.extend_from_slice(&MAGIC);
    bundle.extend_from_slice(&VERSION.to_le_bytes());
    bundle.extend_from_slice(&flags.to_le_bytes());
    bundle.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bundle.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    bundle.extend_from_slice(&body);
    bundle
}

/// Check and decode a bundle.
///
/// # Errors
/// A [`BundleError`] naming what is wrong (and where) when the bytes are not a whole bundle
/// this host reads, or fail its checksum.
pub fn decode<R: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<Body<R>, BundleError> {
    let (record, image) = check(bytes)?;
    let image = image.map(|at| bytes[at..].to_vec());
    Ok(Body { record, image })
}

/// [`decode`] a bundle held in a vector of its own: the memory image is the vector itself,
/// the header and record moved out of its front, rather than a copy (a large guest's image
/// is megabytes).
///
/// # Errors
/// As for [`decode`].
pub fn decode_owned<R: for<'de> Deserialize<'de>>(
    mut bytes: Vec<u8>,
) -> Result<Body<R>, BundleError> {
    let (record, image) = check(&bytes)?;
    let image = image.map(|at| {
        bytes.drain(..at);
        bytes
    });
    Ok(Body { record, image })
}

/// The record of a checked bundle, and where its memory image starts (if it has one).
fn check<R: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<(R, Option<usize>), BundleError> {
    if bytes.len() < HEADER_LEN {
        return Err(BundleError::TooShort { len: bytes.len() });
    }
    if bytes[..8] != MAGIC {
        return Err(BundleError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version != VERSION {
        return Err(BundleError::UnknownVersion { found: version });
    }
    let flags = u16::from_le_bytes([bytes[10], bytes[11]]);
    if flags & !FLAG_IMAGE != 0 {
        return Err(BundleError::UnknownFlags { flags });
    }
    let expected = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let stored = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != expected {
        return Err(BundleError::Truncated {
            expected,
            found: body.len() as u64,
        });
    }
    let computed = crc32fast::hash(body);
    if computed != stored {
        return Err(BundleError::Checksum { stored, computed });
    }
    let (record, rest) = postcard::take_from_bytes(body).map_err(|e| BundleError::Decode {
        offset: 0,
        message: e.to_string(),
    })?;
    let image = if flags & FLAG_IMAGE != 0 {
        if rest.is_empty() {
            return Err(BundleError::Decode {
                offset: body.len(),
                message: "a memory image is flagged, but none follows the record".into(),
            });
        }
        Some(bytes.len() - rest.len())
    } else if rest.is_empty() {
        None
    } else {
        return Err(BundleError::Decode {
            offset: body.len() - rest.len(),
            message: format!(
                "{} bytes follow the record, but no memory image is flagged",
                rest.len()
            ),
        });
    };
    Ok((record, image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Sample {
        pid: String,
        context: String,
        steps: u64,
    }

    fn sample() -> Sample {
        Sample {
            pid: "p-1".into(),
            context: r#"{"n": 27}"#.into(),
            steps: 111,
        }
    }

    #[test]
    fn a_bundle_round_trips_with_and_without_an_image() {
        let plain = encode(&sample(), None);
        assert_eq!(
            decode::<Sample>(&plain).unwrap(),
            Body {
                record: sample(),
                image: None
            }
        );
        let with_image = encode(&sample(), Some(&[1, 2, 3]));
        let body = decode::<Sample>(&with_image).unwrap();
        assert_eq!(body.image.as_deref(), Some(&[1u8, 2, 3][..]));
        // Decoded from a vector of its own, the same body: the image is that vector.
        assert_eq!(decode_owned::<Sample>(with_image).unwrap(), body);
        assert_eq!(
            decode_owned::<Sample>(plain.clone()).unwrap(),
            decode(&plain).unwrap()
        );
        let mut damaged = plain;
        damaged[HEADER_LEN] ^= 1;
        assert!(decode_owned::<Sample>(damaged).is_err());
    }

    #[test]
    fn flipping_any_single_byte_is_detected() {
        let bundle = encode(&sample(), Some(&[9; 40]));
        for i in 0..bundle.len() {
            let mut damaged = bundle.clone();
            damaged[i] ^= 0x01;
            assert!(
                decode::<Sample>(&damaged).is_err(),
                "a flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn truncation_and_foreign_versions_are_named() {
        let bundle = encode(&sample(), None);
        for len in 0..bundle.len() {
            let err = decode::<Sample>(&bundle[..len]).unwrap_err();
            assert!(
                matches!(
                    err,
                    BundleError::TooShort { .. } | BundleError::Truncated { .. }
                ),
                "{err}"
            );
        }
        for other in [1, VERSION + 1] {
            let mut foreign = bundle.clone();
            foreign[8..10].copy_from_slice(&other.to_le_bytes());
            assert_eq!(
                decode::<Sample>(&foreign).unwrap_err(),
                BundleError::UnknownVersion { found: other }
            );
        }
    }
}
