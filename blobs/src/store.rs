//! [`BlobStore`]: blobs as files, and partial transfers that resume.
//!
//! ```text
//! <root>/sha256/<first 2 hex>/<64 hex>   whole blobs, verified, never changed
//! <root>/partial/<owner>.<64 hex>        a transfer in progress: the bytes
//!                                        received so far, each chunk synced
//!                                        to disk before it is acknowledged
//! <root>/tmp/                            files being copied in (cleared on open)
//! ```
//!
//! Partial transfers are keyed by an owner (the server uses the school code,
//! the phone `up` or `down`) as well as the hash, so two schools uploading the
//! same photo do not write into one file. A partial file's length is the
//! transfer's progress: nothing else needs to agree with it after a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{BlobError, BlobHash, BlobHasher};

/// A directory of blobs named by their SHA-256.
#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
}

/// What [`BlobStore::finish`] did with a complete transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// The blob is new to this store.
    Stored,
    /// The store already had it (another owner sent it first); the copy was
    /// checked and dropped.
    AlreadyStored,
}

impl BlobStore {
    /// Opens (creating if needed) a store under `root`, and clears copies
    /// left half-made by a crash.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, BlobError> {
        let root = root.as_ref().to_path_buf();
        for dir in ["sha256", "partial"] {
            let p = root.join(dir);
            fs::create_dir_all(&p).map_err(BlobError::io("create", &p))?;
        }
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(BlobError::io("clear", &tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(BlobError::io("create", &tmp))?;
        Ok(Self { root })
    }

    /// The directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a whole blob is (or would be) kept.
    pub fn path_of(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    /// Whether the whole blob is here.
    pub fn contains(&self, hash: &BlobHash) -> bool {
        self.path_of(hash).is_file()
    }

    /// The blob's size, if it is here.
    pub fn size_of(&self, hash: &BlobHash) -> Option<u64> {
        fs::metadata(self.path_of(hash)).ok().map(|m| m.len())
    }

    /// Opens a whole blob for reading.
    pub fn open_blob(&self, hash: &BlobHash) -> Result<File, BlobError> {
        let p = self.path_of(hash);
        File::open(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BlobError::Missing(*hash)
            } else {
                BlobError::io("open", p)(e)
            }
        })
    }

    /// Up to `max` bytes of a whole blob from `offset`.
    pub fn read_range(
        &self,
        hash: &BlobHash,
        offset: u64,
        max: usize,
    ) -> Result<Vec<u8>, BlobError> {
        let mut f = self.open_blob(hash)?;
        let p = self.path_of(hash);
        f.seek(SeekFrom::Start(offset))
            .map_err(BlobError::io("seek", &p))?;
        let mut out = Vec::with_capacity(max.min(1 << 20));
        f.take(max as u64)
            .read_to_end(&mut out)
            .map_err(BlobError::io("read", &p))?;
        Ok(out)
    }

    /// Copies a file into the store (at most `max_bytes`), hashing it on the
    /// way; the copy is synced to disk before this returns. The same bytes
    /// added twice are stored once.
    pub fn put_file(&self, src: &Path, max_bytes: u64) -> Result<(BlobHash, u64), BlobError> {
        let mut input = File::open(src).map_err(BlobError::io("open", src))?;
        let size = input.metadata().map_err(BlobError::io("read", src))?.len();
        if size > max_bytes {
            return Err(BlobError::TooLarge {
                size,
                max: max_bytes,
            });
        }
        let (tmp_path, mut tmp) = self.temp_file()?;
        let mut hasher = BlobHasher::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut copied = 0u64;
        loop {
            let n = input.read(&mut buf).map_err(BlobError::io("read", src))?;
            if n == 0 {
                break;
            }
            copied += n as u64;
            if copied > max_bytes {
                let _ = fs::remove_file(&tmp_path);
                return Err(BlobError::TooLarge {
                    size: copied,
                    max: max_bytes,
                });
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])
                .map_err(BlobError::io("write", &tmp_path))?;
        }
        let hash = hasher.finish();
        self.settle(&tmp_path, tmp, &hash)?;
        Ok((hash, copied))
    }

    /// Adds `len` bytes read from `input`, hashing them on the way; the
    /// copy is synced before this returns. Returns their name.
    pub fn put_reader(&self, input: &mut impl Read, len: u64) -> Result<BlobHash, BlobError> {
        let (tmp_path, mut tmp) = self.temp_file()?;
        let mut hasher = BlobHasher::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let want = (left as usize).min(buf.len());
            input
                .read_exact(&mut buf[..want])
                .map_err(BlobError::io("read", &tmp_path))?;
            hasher.update(&buf[..want]);
            tmp.write_all(&buf[..want])
                .map_err(BlobError::io("write", &tmp_path))?;
            left -= want as u64;
        }
        let hash = hasher.finish();
        self.settle(&tmp_path, tmp, &hash)?;
        Ok(hash)
    }

    /// Every whole blob in the store, in name order.
    pub fn list(&self) -> Result<Vec<BlobHash>, BlobError> {
        let root = self.root.join("sha256");
        let mut out = Vec::new();
        for dir in fs::read_dir(&root).map_err(BlobError::io("list", &root))? {
            let dir = dir.map_err(BlobError::io("list", &root))?.path();
            if !dir.is_dir() {
                continue;
            }
            for f in fs::read_dir(&dir).map_err(BlobError::io("list", &dir))? {
                let f = f.map_err(BlobError::io("list", &dir))?;
                if let Some(h) = f.file_name().to_str().and_then(|n| n.parse().ok()) {
                    out.push(h);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Adds bytes held in memory; see [`put_file`](Self::put_file).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<BlobHash, BlobError> {
        let hash = BlobHash::of(bytes);
        if self.contains(&hash) {
            return Ok(hash);
        }
        let (tmp_path, mut tmp) = self.temp_file()?;
        tmp.write_all(bytes)
            .map_err(BlobError::io("write", &tmp_path))?;
        self.settle(&tmp_path, tmp, &hash)?;
        Ok(hash)
    }

    fn temp_file(&self) -> Result<(PathBuf, File), BlobError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = self
            .root
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()));
        let f = File::create(&p).map_err(BlobError::io("create", &p))?;
        Ok((p, f))
    }

    /// Syncs a verified file and moves it to its name.
    fn settle(&self, tmp_path: &Path, tmp: File, hash: &BlobHash) -> Result<Finished, BlobError> {
        tmp.sync_all().map_err(BlobError::io("sync", tmp_path))?;
        drop(tmp);
        let dest = self.path_of(hash);
        if dest.is_file() {
            let _ = fs::remove_file(tmp_path);
            return Ok(Finished::AlreadyStored);
        }
        let dir = dest.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(BlobError::io("create", dir))?;
        fs::rename(tmp_path, &dest).map_err(BlobError::io("rename into", &dest))?;
        sync_dir(dir)?;
        Ok(Finished::Stored)
    }

    fn partial_path(&self, owner: &str, hash: &BlobHash) -> PathBuf {
        debug_assert!(owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        self.root
            .join("partial")
            .join(format!("{owner}.{}", hash.to_hex()))
    }

    /// Bytes of `hash` received so far under `owner` (0 when none).
    pub fn partial_len(&self, owner: &str, hash: &BlobHash) -> u64 {
        fs::metadata(self.partial_path(owner, hash))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Appends verified bytes at `offset` of a transfer of a blob of `size`
    /// bytes, and syncs them to disk before returning the new length: the
    /// returned length is what may be acknowledged.
    pub fn append(
        &self,
        owner: &str,
        hash: &BlobHash,
        size: u64,
        offset: u64,
        bytes: &[u8],
    ) -> Result<u64, BlobError> {
        let p = self.partial_path(owner, hash);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(BlobError::io("open", &p))?;
        let have = f.metadata().map_err(BlobError::io("read", &p))?.len();
        if have != offset {
            return Err(BlobError::OffsetMismatch {
                hash: *hash,
                expected: have,
                got: offset,
            });
        }
        let end = offset + bytes.len() as u64;
        if end > size {
            return Err(BlobError::PastEnd {
                hash: *hash,
                size,
                got: end,
            });
        }
        f.write_all(bytes).map_err(BlobError::io("write", &p))?;
        f.sync_data().map_err(BlobError::io("sync", &p))?;
        Ok(end)
    }

    /// Checks a complete transfer against its name and moves it into the
    /// store. On a mismatch the partial copy is discarded (it cannot be
    /// repaired: which chunk is wrong is unknown) and the error says so.
    pub fn finish(&self, owner: &str, hash: &BlobHash) -> Result<Finished, BlobError> {
        let p = self.partial_path(owner, hash);
        let mut f = File::open(&p).map_err(BlobError::io("open", &p))?;
        let mut hasher = BlobHasher::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(BlobError::io("read", &p))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let actual = hasher.finish();
        if actual != *hash {
            drop(f);
            let _ = fs::remove_file(&p);
            return Err(BlobError::Mismatch {
                expected: *hash,
                actual,
            });
        }
        // Already synced chunk by chunk; settle syncs again (cheap) and renames.
        self.settle(&p, f, hash)
    }

    /// Drops a partial transfer.
    pub fn discard(&self, owner: &str, hash: &BlobHash) -> Result<(), BlobError> {
        let p = self.partial_path(owner, hash);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(BlobError::io("remove", p)(e)),
        }
    }
}

/// Makes a rename inside `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BlobError::io("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_stored_once_under_its_hash_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let src = dir.path().join("photo.jpg");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(&src, &bytes).unwrap();
        let (h, n) = store.put_file(&src, 1 << 20).unwrap();
        assert_eq!((h, n), (BlobHash::of(&bytes), bytes.len() as u64));
        assert_eq!(store.put_bytes(&bytes).unwrap(), h);
        assert_eq!(store.size_of(&h), Some(200_000));
        assert_eq!(
            store.read_range(&h, 199_990, 100).unwrap(),
            &bytes[199_990..]
        );
        assert!(matches!(
            store.put_file(&src, 1000),
            Err(BlobError::TooLarge {
                size: 200_000,
                max: 1000
            })
        ));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_partial_transfer_resumes_refuses_wrong_offsets_and_checks_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let bytes = vec![9u8; 1000];
        let h = BlobHash::of(&bytes);
        assert_eq!(store.append("s1", &h, 1000, 0, &bytes[..400]).unwrap(), 400);
        // Reopening (as after a crash) keeps the progress.
        let store = BlobStore::open(dir.path()).unwrap();
        assert_eq!(store.partial_len("s1", &h), 400);
        assert!(matches!(
            store.append("s1", &h, 1000, 0, &bytes[..10]),
            Err(BlobError::OffsetMismatch {
                expected: 400,
                got: 0,
                ..
            })
        ));
        assert!(matches!(
            store.append("s1", &h, 1000, 400, &[0u8; 601]),
            Err(BlobError::PastEnd { .. })
        ));
        // Another owner's transfer of the same blob is separate.
        assert_eq!(store.partial_len("s2", &h), 0);
        store.append("s1", &h, 1000, 400, &bytes[400..]).unwrap();
        assert_eq!(store.finish("s1", &h).unwrap(), Finished::Stored);
        assert!(store.contains(&h));
        assert_eq!(store.partial_len("s1", &h), 0);
        store.append("s2", &h, 1000, 0, &bytes).unwrap();
        assert_eq!(store.finish("s2", &h).unwrap(), Finished::AlreadyStored);

        let wrong = BlobHash::of(b"something else");
        store.append("s1", &wrong, 1000, 0, &bytes).unwrap();
        assert!(matches!(
            store.finish("s1", &wrong),
            Err(BlobError::Mismatch { .. })
        ));
        assert_eq!(store.partial_len("s1", &wrong), 0);
        assert!(!store.contains(&wrong));
    }
}
