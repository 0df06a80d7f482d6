//! File reading shared by the format readers: error mapping and transparent gzip decompression.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::DataError;

/// The first two bytes of every gzip stream (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Maps an I/O error on `path` to [`DataError::NotFound`] or [`DataError::Io`].
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> DataError {
    if source.kind() == std::io::ErrorKind::NotFound {
        DataError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Reads a whole file.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| io_error(path, source))
}

/// Reads a whole file, decompressing it when it starts with the gzip magic bytes, whatever its
/// name.
pub(crate) fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = read_file(path)?;
    decompress_if_gzip(path, raw)
}

/// Decompresses `raw` when it starts with the gzip magic bytes and returns it unchanged otherwise.
/// `path` names the source in errors.
pub(crate) fn decompress_if_gzip(path: &Path, raw: Vec<u8>) -> Result<Vec<u8>, DataError> {
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut decompressed = Vec::new();
    MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut decompressed)
        .map_err(|source| DataError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(decompressed)
}

/// Reads up to `n` bytes from the start of a file, decompressing it first when it starts with
/// the gzip magic bytes. Returns fewer bytes when the file or stream is shorter.
pub(crate) fn read_prefix(path: &Path, n: usize) -> Result<Vec<u8>, DataError> {
    let file = std::fs::File::open(path).map_err(|source| io_error(path, source))?;
    let mut raw = Vec::with_capacity(n.max(GZIP_MAGIC.len()));
    file.take(n.max(GZIP_MAGIC.len()) as u64)
        .read_to_end(&mut raw)
        .map_err(|source| io_error(path, source))?;
    if !raw.starts_with(&GZIP_MAGIC) {
        raw.truncate(n);
        return Ok(raw);
    }

    let file = std::fs::File::open(path).map_err(|source| io_error(path, source))?;
    let mut decompressed = Vec::with_capacity(n);
    MultiGzDecoder::new(file)
        .take(n as u64)
        .read_to_end(&mut decompressed)
        .map_err(|source| DataError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(decompressed)
}

/// Returns the entries of a directory, sorted by file name so that loading is deterministic.
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let reader = std::fs::read_dir(dir).map_err(|source| io_error(dir, source))?;
    let mut entries = Vec::new();
    for entry in reader {
        let entry = entry.map_err(|source| io_error(dir, source))?;
        entries.push(entry.path());
    }
    entries.sort();
    Ok(entries)
}

/// Returns the first of `names` that exists as a file in `dir`.
pub(crate) fn find_file(dir: &Path, names: &[String]) -> Option<PathBuf> {
    names
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// Returns the file name of `path` as UTF-8, or an empty string when it has none.
pub(crate) fn file_name(path: &Path) -> &str {
    path.file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("")
}
