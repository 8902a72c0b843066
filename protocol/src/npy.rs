//! `.npy` read and write for 2-D `i8` and `i32` matrices (numpy's format, versions 1–3,
//! C order, little-endian).
//!
//! Untrusted input: every field is checked, the shape against the limits and the file size
//! before the data buffer is allocated, and a file that is shorter or longer than its header
//! says is refused.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::limits::{MAX_NPY_FILE_BYTES, MAX_NPY_HEADER_BYTES};
use crate::matrix::{Matrix, MatrixError, check_shape};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// A problem reading or writing a `.npy` file.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// An I/O error other than a short read.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file (or `<stream>`).
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not start with numpy's magic string.
    #[error("not a .npy file: bad magic bytes")]
    BadMagic,
    /// A format version this reader does not know.
    #[error("unsupported .npy format version {major}.{minor}")]
    UnsupportedVersion {
        /// Major version.
        major: u8,
        /// Minor version.
        minor: u8,
    },
    /// The header is longer than [`MAX_NPY_HEADER_BYTES`].
    #[error("the .npy header is {len} bytes, more than the limit {max}")]
    HeaderTooLarge {
        /// Declared header length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The header is not the dictionary numpy writes.
    #[error("malformed .npy header: {reason}")]
    MalformedHeader {
        /// What is wrong.
        reason: String,
    },
    /// The dtype is not the one expected.
    #[error("wrong dtype {found:?}: expected {expected} ({expected_descr:?})")]
    WrongDtype {
        /// The header's `descr`.
        found: String,
        /// The expected element type.
        expected: &'static str,
        /// The descr numpy writes for it.
        expected_descr: &'static str,
    },
    /// The array is stored in Fortran (column-major) order.
    #[error("Fortran-order arrays are not supported: save with np.ascontiguousarray(x)")]
    FortranOrder,
    /// The array is not 2-D.
    #[error("expected a 2-D array, found shape with {dims} dimensions")]
    NotTwoDimensional {
        /// Number of dimensions found.
        dims: usize,
    },
    /// The shape exceeds the limits.
    #[error("shape rejected: {0}")]
    Shape(#[from] MatrixError),
    /// The file ends before the data the header promises.
    #[error("truncated .npy data: header promises {expected} bytes of data, found {actual}")]
    Truncated {
        /// Bytes the header promises.
        expected: u64,
        /// Bytes present.
        actual: u64,
    },
    /// The file holds more bytes than the header promises.
    #[error("trailing bytes after the .npy data: header promises {expected} bytes of data, file holds more")]
    TrailingData {
        /// Bytes the header promises.
        expected: u64,
    },
    /// The file is larger than [`MAX_NPY_FILE_BYTES`].
    #[error("file is {len} bytes, more than the limit {max}")]
    FileTooLarge {
        /// File length.
        len: u64,
        /// The limit.
        max: u64,
    },
}

/// An element type that `.npy` files can hold here.
pub trait NpyElement: Copy + Default + Send + Sync + 'static {
    /// numpy's `descr` for this type as numpy writes it.
    const DESCR: &'static str;
    /// Other spellings accepted on read (same type, same byte order).
    const DESCR_ALIASES: &'static [&'static str];
    /// Rust name, for messages.
    const NAME: &'static str;
    /// Size in bytes.
    const SIZE: usize;
    /// Decodes little-endian bytes (exactly `SIZE` of them).
    fn from_le(bytes: &[u8]) -> Self;
    /// Appends the little-endian bytes.
    fn extend_le(self, out: &mut Vec<u8>);
}

impl NpyElement for i8 {
    const DESCR: &'static str = "|i1";
    const DESCR_ALIASES: &'static [&'static str] = &["<i1", "=i1", "i1", "|b", "b"];
    const NAME: &'static str = "i8";
    const SIZE: usize = 1;
    fn from_le(bytes: &[u8]) -> Self {
        bytes[0] as i8
    }
    fn extend_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
}

impl NpyElement for i32 {
    const DESCR: &'static str = "<i4";
    const DESCR_ALIASES: &'static [&'static str] = &[];
    const NAME: &'static str = "i32";
    const SIZE: usize = 4;
    fn from_le(bytes: &[u8]) -> Self {
        i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
    fn extend_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// The parsed header of a `.npy` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// numpy's `descr`.
    pub descr: String,
    /// Whether the data is column-major.
    pub fortran_order: bool,
    /// The shape.
    pub shape: Vec<usize>,
    /// Bytes before the data (magic, version, length field, header).
    pub data_offset: usize,
}

fn io_err(path: &str) -> impl FnOnce(std::io::Error) -> NpyError + '_ {
    move |source| NpyError::Io { path: path.to_string(), source }
}

/// Reads and parses the header; leaves the reader at the first data byte.
pub fn read_header<R: Read>(reader: &mut R, path: &str) -> Result<NpyHeader, NpyError> {
    let mut preamble = [0u8; 8];
    read_exact_or_truncated(reader, &mut preamble, path, 0)?;
    if &preamble[..6] != MAGIC {
        return Err(NpyError::BadMagic);
    }
    let (major, minor) = (preamble[6], preamble[7]);
    let (header_len, len_field) = match major {
        1 => {
            let mut len = [0u8; 2];
            read_exact_or_truncated(reader, &mut len, path, 0)?;
            (usize::from(u16::from_le_bytes(len)), 2)
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            read_exact_or_truncated(reader, &mut len, path, 0)?;
            (u32::from_le_bytes(len) as usize, 4)
        }
        _ => return Err(NpyError::UnsupportedVersion { major, minor }),
    };
    if minor != 0 {
        return Err(NpyError::UnsupportedVersion { major, minor });
    }
    if header_len > MAX_NPY_HEADER_BYTES {
        return Err(NpyError::HeaderTooLarge { len: header_len, max: MAX_NPY_HEADER_BYTES });
    }
    let mut header = vec![0u8; header_len];
    read_exact_or_truncated(reader, &mut header, path, 0)?;
    let text =
        std::str::from_utf8(&header).map_err(|_| NpyError::MalformedHeader { reason: "header is not UTF-8".into() })?;
    let mut parsed = parse_header_dict(text)?;
    parsed.data_offset = 8 + len_field + header_len;
    Ok(parsed)
}

fn read_exact_or_truncated<R: Read>(
    reader: &mut R,
    buf: &mut [u8],
    path: &str,
    expected_data: u64,
) -> Result<(), NpyError> {
    reader.read_exact(buf).map_err(|source| {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            NpyError::Truncated { expected: expected_data.max(buf.len() as u64), actual: 0 }
        } else {
            NpyError::Io { path: path.to_string(), source }
        }
    })
}

/// Parses numpy's header dictionary, e.g.
/// `{'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_header_dict(text: &str) -> Result<NpyHeader, NpyError> {
    let malformed = |reason: &str| NpyError::MalformedHeader { reason: reason.to_string() };
    let body = text.trim_end_matches(['\n', ' ', '\0']).trim();
    let body = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(|| malformed("header is not a {...} dictionary"))?;

    let mut descr = None;
    let mut fortran_order = None;
    let mut shape = None;
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (key, after_key) = parse_quoted(rest).ok_or_else(|| malformed("expected a quoted key"))?;
        let after_colon =
            after_key.trim_start().strip_prefix(':').ok_or_else(|| malformed("expected ':' after a key"))?.trim_start();
        let after_value = match key {
            "descr" => {
                let (value, after) = parse_quoted(after_colon).ok_or_else(|| malformed("descr is not a string"))?;
                if descr.replace(value.to_string()).is_some() {
                    return Err(malformed("duplicate key 'descr'"));
                }
                after
            }
            "fortran_order" => {
                let (value, after) = if let Some(after) = after_colon.strip_prefix("False") {
                    (false, after)
                } else if let Some(after) = after_colon.strip_prefix("True") {
                    (true, after)
                } else {
                    return Err(malformed("fortran_order is not True or False"));
                };
                if fortran_order.replace(value).is_some() {
                    return Err(malformed("duplicate key 'fortran_order'"));
                }
                after
            }
            "shape" => {
                let inner = after_colon.strip_prefix('(').ok_or_else(|| malformed("shape is not a tuple"))?;
                let close = inner.find(')').ok_or_else(|| malformed("shape tuple is not closed"))?;
                let mut dims = Vec::new();
                for part in inner[..close].split(',') {
                    let part = part.trim();
                    if part.is_empty() {
                        continue;
                    }
                    if dims.len() >= 32 {
                        return Err(malformed("shape has too many dimensions"));
                    }
                    let dim: usize =
                        part.parse().map_err(|_| malformed("shape entry is not a non-negative integer"))?;
                    dims.push(dim);
                }
                if shape.replace(dims).is_some() {
                    return Err(malformed("duplicate key 'shape'"));
                }
                &inner[close + 1..]
            }
            _ => return Err(malformed("unknown key in header")),
        };
        let after_value = after_value.trim_start();
        rest = match after_value.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if after_value.is_empty() => after_value,
            None => return Err(malformed("expected ',' between entries")),
        };
    }
    Ok(NpyHeader {
        descr: descr.ok_or_else(|| malformed("missing 'descr'"))?,
        fortran_order: fortran_order.ok_or_else(|| malformed("missing 'fortran_order'"))?,
        shape: shape.ok_or_else(|| malformed("missing 'shape'"))?,
        data_offset: 0,
    })
}

/// Parses `'text'` or `"text"` at the start; returns the text and what follows.
fn parse_quoted(input: &str) -> Option<(&str, &str)> {
    let quote = input.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &input[1..];
    let end = body.find(quote)?;
    Some((&body[..end], &body[end + 1..]))
}

/// Checks a header for a 2-D matrix of `T`; returns `(rows, cols, data_bytes)`.
fn check_header<T: NpyElement>(header: &NpyHeader) -> Result<(usize, usize, u64), NpyError> {
    if header.descr != T::DESCR && !T::DESCR_ALIASES.contains(&header.descr.as_str()) {
        return Err(NpyError::WrongDtype { found: header.descr.clone(), expected: T::NAME, expected_descr: T::DESCR });
    }
    if header.fortran_order {
        return Err(NpyError::FortranOrder);
    }
    let &[rows, cols] = header.shape.as_slice() else {
        return Err(NpyError::NotTwoDimensional { dims: header.shape.len() });
    };
    let elements = check_shape(rows, cols)?;
    Ok((rows, cols, (elements * T::SIZE) as u64))
}

/// Reads a 2-D matrix of `T` from a stream. The data buffer grows as bytes arrive, so a
/// header that lies about its size cannot make this allocate more than the stream holds
/// (beyond the limits).
pub fn read_matrix<T: NpyElement, R: Read>(reader: &mut R) -> Result<Matrix<T>, NpyError> {
    read_matrix_named(reader, "<stream>")
}

fn read_matrix_named<T: NpyElement, R: Read>(reader: &mut R, path: &str) -> Result<Matrix<T>, NpyError> {
    let header = read_header(reader, path)?;
    let (rows, cols, data_bytes) = check_header::<T>(&header)?;
    let mut bytes = Vec::with_capacity((data_bytes as usize).min(64 << 20));
    reader.take(data_bytes + 1).read_to_end(&mut bytes).map_err(io_err(path))?;
    let actual = bytes.len() as u64;
    if actual < data_bytes {
        return Err(NpyError::Truncated { expected: data_bytes, actual });
    }
    if actual > data_bytes {
        return Err(NpyError::TrailingData { expected: data_bytes });
    }
    let data = bytes.chunks_exact(T::SIZE).map(T::from_le).collect();
    Ok(Matrix::from_vec(rows, cols, data)?)
}

/// Reads a 2-D matrix of `T` from a file, checking the file size against the header before
/// allocating anything sized by it.
pub fn read_matrix_file<T: NpyElement>(path: &Path) -> Result<Matrix<T>, NpyError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(io_err(&name))?;
    let len = file.metadata().map_err(io_err(&name))?.len();
    if len > MAX_NPY_FILE_BYTES {
        return Err(NpyError::FileTooLarge { len, max: MAX_NPY_FILE_BYTES });
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let header = read_header(&mut reader, &name)?;
    let (_, _, data_bytes) = check_header::<T>(&header)?;
    let present = len.saturating_sub(header.data_offset as u64);
    if present < data_bytes {
        return Err(NpyError::Truncated { expected: data_bytes, actual: present });
    }
    if present > data_bytes {
        return Err(NpyError::TrailingData { expected: data_bytes });
    }
    // Re-read from the start through the streaming path, which re-checks everything.
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err(&name))?);
    read_matrix_named(&mut reader, &name)
}

/// The header bytes numpy would write for this matrix (version 1.0, padded to 64 bytes).
pub fn header_bytes<T: NpyElement>(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '{}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}", T::DESCR);
    // magic(6) + version(2) + len(2) + dict + padding + '\n' ≡ 0 (mod 64)
    let unpadded = 10 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + padding + 1;
    let mut out = Vec::with_capacity(10 + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    out
}

/// Writes a matrix as `.npy` (version 1.0, C order, little-endian).
pub fn write_matrix<T: NpyElement, W: Write>(writer: &mut W, matrix: &Matrix<T>) -> std::io::Result<()> {
    writer.write_all(&header_bytes::<T>(matrix.rows(), matrix.cols()))?;
    let mut chunk = Vec::with_capacity(1 << 20);
    for block in matrix.as_slice().chunks((1 << 20) / T::SIZE) {
        chunk.clear();
        for &value in block {
            value.extend_le(&mut chunk);
        }
        writer.write_all(&chunk)?;
    }
    Ok(())
}

/// Writes a matrix to a `.npy` file (created or truncated).
pub fn write_matrix_file<T: NpyElement>(path: &Path, matrix: &Matrix<T>) -> Result<(), NpyError> {
    let name = path.display().to_string();
    let file = File::create(path).map_err(io_err(&name))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    write_matrix(&mut writer, matrix).map_err(io_err(&name))?;
    writer.flush().map_err(io_err(&name))?;
    writer.into_inner().map_err(|e| io_err(&name)(e.into_error()))?.sync_all().map_err(io_err(&name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{MatrixI8, MatrixI32};

    fn encode<T: NpyElement>(m: &Matrix<T>) -> Vec<u8> {
        let mut out = Vec::new();
        write_matrix(&mut out, m).unwrap();
        out
    }

    #[test]
    fn known_answer_header_matches_numpy() {
        // Bytes numpy 2.x writes for np.save(f, np.zeros((2, 3), dtype=np.int8)).
        let bytes = header_bytes::<i8>(2, 3);
        assert_eq!(bytes.len(), 128);
        assert_eq!(&bytes[..10], b"\x93NUMPY\x01\x00\x76\x00");
        assert!(bytes[10..].starts_with(b"{'descr': '|i1', 'fortran_order': False, 'shape': (2, 3), }"));
        assert_eq!(*bytes.last().unwrap(), b'\n');
        let bytes = header_bytes::<i32>(2, 3);
        assert!(bytes[10..].starts_with(b"{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }"));
    }

    #[test]
    fn round_trip_i8_and_i32() {
        let a = MatrixI8::from_vec(2, 3, vec![-128, -1, 0, 1, 2, 127]).unwrap();
        let back: MatrixI8 = read_matrix(&mut encode(&a).as_slice()).unwrap();
        assert_eq!(a, back);
        let c = MatrixI32::from_vec(3, 1, vec![i32::MIN, 0, i32::MAX]).unwrap();
        let back: MatrixI32 = read_matrix(&mut encode(&c).as_slice()).unwrap();
        assert_eq!(c, back);
        let empty = MatrixI32::zeros(0, 5).unwrap();
        let back: MatrixI32 = read_matrix(&mut encode(&empty).as_slice()).unwrap();
        assert_eq!(empty, back);
    }

    #[test]
    fn wrong_dtype_is_refused() {
        let c = MatrixI32::zeros(2, 2).unwrap();
        let err = read_matrix::<i8, _>(&mut encode(&c).as_slice()).unwrap_err();
        assert!(matches!(err, NpyError::WrongDtype { expected: "i8", .. }), "{err}");
        let mut bytes = encode(&c);
        let pos = bytes.windows(3).position(|w| w == b"<i4").unwrap();
        bytes[pos..pos + 3].copy_from_slice(b">i4");
        let err = read_matrix::<i32, _>(&mut bytes.as_slice()).unwrap_err();
        assert!(matches!(err, NpyError::WrongDtype { .. }), "{err}");
        let pos = bytes.windows(3).position(|w| w == b">i4").unwrap();
        bytes[pos..pos + 3].copy_from_slice(b"<f4");
        assert!(matches!(read_matrix::<i32, _>(&mut bytes.as_slice()), Err(NpyError::WrongDtype { .. })));
    }

    #[test]
    fn fortran_order_is_refused() {
        let mut bytes = encode(&MatrixI8::zeros(2, 2).unwrap());
        let pos = bytes.windows(5).position(|w| w == b"False").unwrap();
        bytes[pos..pos + 5].copy_from_slice(b"True ");
        let err = read_matrix::<i8, _>(&mut bytes.as_slice()).unwrap_err();
        assert!(matches!(err, NpyError::FortranOrder), "{err}");
    }

    #[test]
    fn truncated_and_trailing_are_refused() {
        let bytes = encode(&MatrixI32::zeros(4, 4).unwrap());
        for cut in [0, 5, 9, 40, bytes.len() - 1] {
            let err = read_matrix::<i32, _>(&mut &bytes[..cut]).unwrap_err();
            assert!(matches!(err, NpyError::Truncated { .. }), "cut {cut}: {err}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(read_matrix::<i32, _>(&mut longer.as_slice()), Err(NpyError::TrailingData { .. })));
    }

    #[test]
    fn lying_header_does_not_allocate_its_claim() {
        // Claims 100000 × 40000 i8 (4 GB) but carries 16 bytes: refused as truncated
        // without reserving the claim.
        let mut bytes = header_bytes::<i8>(100_000, 40_000);
        bytes.extend_from_slice(&[0u8; 16]);
        let err = read_matrix::<i8, _>(&mut bytes.as_slice()).unwrap_err();
        assert!(matches!(err, NpyError::Truncated { expected: 4_000_000_000, actual: 16 }), "{err}");
    }

    #[test]
    fn shapes_over_the_limits_are_refused() {
        for (rows, cols) in [(1usize << 18, 1usize), (1 << 17, 1 << 17)] {
            let bytes = header_bytes::<i8>(rows, cols);
            let err = read_matrix::<i8, _>(&mut bytes.as_slice()).unwrap_err();
            assert!(matches!(err, NpyError::Shape(_)), "{err}");
        }
        let mut bytes = header_bytes::<i8>(2, 2);
        let pos = bytes.windows(6).position(|w| w == b"(2, 2)").unwrap();
        bytes[pos..pos + 6].copy_from_slice(b"(4,)  ");
        assert!(matches!(read_matrix::<i8, _>(&mut bytes.as_slice()), Err(NpyError::NotTwoDimensional { dims: 1 })));
        let mut bytes = header_bytes::<i8>(2, 2);
        let pos = bytes.windows(6).position(|w| w == b"(2, 2)").unwrap();
        bytes[pos..pos + 6].copy_from_slice(b"(-2,2)");
        assert!(matches!(read_matrix::<i8, _>(&mut bytes.as_slice()), Err(NpyError::MalformedHeader { .. })));
        let huge = b"{'descr': '|i1', 'fortran_order': False, 'shape': (99999999999999999999999, 1), }";
        assert!(parse_header_dict(std::str::from_utf8(huge).unwrap()).is_err());
    }

    #[test]
    fn bad_magic_version_and_header_len() {
        assert!(matches!(read_matrix::<i8, _>(&mut &b"NOTNUMPY\x01\x00"[..]), Err(NpyError::BadMagic)));
        let mut bytes = encode(&MatrixI8::zeros(1, 1).unwrap());
        bytes[6] = 9;
        assert!(matches!(read_matrix::<i8, _>(&mut bytes.as_slice()), Err(NpyError::UnsupportedVersion { .. })));
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        v2.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read_matrix::<i8, _>(&mut v2.as_slice()), Err(NpyError::HeaderTooLarge { .. })));
    }

    #[test]
    fn file_round_trip_and_file_size_checks() {
        let dir = std::env::temp_dir().join(format!("matproof-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.npy");
        let a = crate::matrix::random_i8(5, 7, 1).unwrap();
        write_matrix_file(&path, &a).unwrap();
        assert_eq!(read_matrix_file::<i8>(&path).unwrap(), a);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(read_matrix_file::<i8>(&path), Err(NpyError::Truncated { .. })));
        assert!(matches!(read_matrix_file::<i8>(&dir.join("missing.npy")), Err(NpyError::Io { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = read_matrix::<i8, _>(&mut bytes.as_slice());
            let _ = read_matrix::<i32, _>(&mut bytes.as_slice());
        }

        #[test]
        fn corrupting_a_valid_file_never_panics(pos in 0usize..140, byte in proptest::num::u8::ANY) {
            let mut bytes = encode(&MatrixI8::zeros(3, 4).unwrap());
            let pos = pos % bytes.len();
            bytes[pos] = byte;
            let _ = read_matrix::<i8, _>(&mut bytes.as_slice());
        }
    }
}
