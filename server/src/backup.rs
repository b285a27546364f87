//! Backups of the whole data directory while the server runs, and restore
//! into an empty one.
//!
//! A backup is one file: a header line, then for every sled tree every
//! key-value pair as length-prefixed records, then a SHA-256 of everything
//! before it. The server takes it under the write gate (no commit, sign-in
//! or account change lands meanwhile), so it is one consistent moment of
//! documents and accounts together. Restore checks the whole file's
//! checksum before it writes anything.

use std::io::{BufReader, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use tpsync_blobs::{BlobHash, BlobStore};

const MAGIC_V1: &[u8] = b"TPSYNC-BACKUP 1\n";
const MAGIC: &[u8] = b"TPSYNC-BACKUP 2\n";
const TAG_ENTRY: u8 = 1;
const TAG_END: u8 = 2;
/// Version 2: an attachment's bytes (SHA-256, length as u64 LE, bytes).
const TAG_BLOB: u8 = 3;

/// What a backup holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Key-value pairs of every sled tree.
    pub entries: u64,
    /// Attachment blobs.
    pub blobs: u64,
}

/// Writes every tree of `db`, then every blob of `blobs`, to `out`.
/// Blobs are streamed from their files, never held whole in memory.
pub fn export(
    db: &sled::Db,
    blobs: Option<&BlobStore>,
    out: &mut impl Write,
) -> Result<Counts, String> {
    let mut hash = Sha256::new();
    let mut put = |bytes: &[u8], out: &mut dyn Write| -> Result<(), String> {
        hash.update(bytes);
        out.write_all(bytes).map_err(|e| e.to_string())
    };
    put(MAGIC, out)?;
    let mut n = Counts::default();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).map_err(|e| e.to_string())?;
        for kv in tree.iter() {
            let (k, v) = kv.map_err(|e| e.to_string())?;
            let mut rec = vec![TAG_ENTRY];
            for part in [&name[..], &k[..], &v[..]] {
                rec.extend_from_slice(&(part.len() as u32).to_le_bytes());
                rec.extend_from_slice(part);
            }
            put(&rec, out)?;
            n.entries += 1;
        }
    }
    if let Some(store) = blobs {
        for h in store.list().map_err(|e| e.to_string())? {
            let mut f = store.open_blob(&h).map_err(|e| e.to_string())?;
            let len = f.metadata().map_err(|e| e.to_string())?.len();
            let mut head = vec![TAG_BLOB];
            head.extend_from_slice(h.as_bytes());
            head.extend_from_slice(&len.to_le_bytes());
            put(&head, out)?;
            let mut buf = vec![0u8; 64 << 10];
            let mut left = len;
            while left > 0 {
                let want = (left as usize).min(buf.len());
                f.read_exact(&mut buf[..want]).map_err(|e| e.to_string())?;
                put(&buf[..want], out)?;
                left -= want as u64;
            }
            n.blobs += 1;
        }
    }
    put(&[TAG_END], out)?;
    let digest = hash.finalize();
    out.write_all(&digest).map_err(|e| e.to_string())?;
    Ok(n)
}

/// Restores a backup file into `data` (which must not hold a database yet):
/// the documents and accounts into `data/db`, attachments into
/// `data/blobs`. The whole file's checksum is checked before anything is
/// written (a first pass that reads it through), then it is read again and
/// applied, so a backup larger than memory restores.
pub fn restore(from: &Path, data: &Path) -> Result<Counts, String> {
    let db_path = data.join("db");
    if db_path.exists() {
        return Err(format!(
            "{} holds a database already; restore into a new, empty data directory (and point the server at it)",
            data.display()
        ));
    }
    let damaged = |e: String| {
        format!(
            "{} is not a complete tpsync backup ({e}); nothing was restored",
            from.display()
        )
    };
    let open =
        || std::fs::File::open(from).map_err(|e| format!("cannot read {}: {e}", from.display()));
    let len = open()?.metadata().map_err(|e| e.to_string())?.len();
    if len < (MAGIC.len() + 1 + 32) as u64 {
        return Err(damaged("not a backup file".into()));
    }
    // Pass 1: the checksum of everything before the last 32 bytes.
    let mut r = BufReader::new(open()?);
    let mut hash = Sha256::new();
    let mut left = len - 32;
    let mut buf = vec![0u8; 64 << 10];
    while left > 0 {
        let want = (left as usize).min(buf.len());
        r.read_exact(&mut buf[..want])
            .map_err(|e| damaged(e.to_string()))?;
        hash.update(&buf[..want]);
        left -= want as u64;
    }
    let mut digest = [0u8; 32];
    r.read_exact(&mut digest)
        .map_err(|e| damaged(e.to_string()))?;
    if hash.finalize().as_slice() != digest {
        return Err(damaged(
            "the checksum does not match: the file is damaged or cut short".into(),
        ));
    }
    // Pass 2: apply.
    let mut r = Body {
        inner: BufReader::new(open()?),
        left: len - 32,
    };
    let mut magic = vec![0u8; MAGIC.len()];
    r.exact(&mut magic).map_err(damaged)?;
    let v2 = match magic.as_slice() {
        m if m == MAGIC => true,
        m if m == MAGIC_V1 => false,
        _ => return Err(damaged("not a backup file".into())),
    };
    // A file whose checksum holds can still be malformed (forged, or
    // written by a faulty exporter): what was written before the fault is
    // removed again, so a failed restore leaves no half-restored data
    // directory for a server to start on.
    let data_existed = data.exists();
    let blobs_existed = data.join("blobs").exists();
    std::fs::create_dir_all(data).map_err(|e| e.to_string())?;
    let applied = apply(&mut r, v2, from, data, &db_path, &damaged);
    if applied.is_err() {
        // sled may still be closing the database on its own threads.
        for _ in 0..50 {
            if std::fs::remove_dir_all(&db_path).is_ok() || !db_path.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !blobs_existed {
            let _ = std::fs::remove_dir_all(data.join("blobs"));
        }
        if !data_existed {
            let _ = std::fs::remove_dir(data);
        }
    }
    applied
}

/// Pass 2 of [`restore`]: writes the records after the header into a new
/// database at `db_path` and the blobs into `data/blobs`.
fn apply<R: Read>(
    r: &mut Body<R>,
    v2: bool,
    from: &Path,
    data: &Path,
    db_path: &Path,
    damaged: &dyn Fn(String) -> String,
) -> Result<Counts, String> {
    let db = sled::open(db_path).map_err(|e| e.to_string())?;
    let mut store = None;
    let mut n = Counts::default();
    loop {
        let mut tag = [0u8; 1];
        r.exact(&mut tag).map_err(damaged)?;
        match tag[0] {
            TAG_END if r.left == 0 => break,
            TAG_ENTRY => {
                let mut parts: [Vec<u8>; 3] = Default::default();
                for p in &mut parts {
                    let mut l = [0u8; 4];
                    r.exact(&mut l).map_err(damaged)?;
                    let l = u32::from_le_bytes(l) as u64;
                    if l > r.left {
                        return Err(damaged("cut short".into()));
                    }
                    p.resize(l as usize, 0);
                    r.exact(p).map_err(damaged)?;
                }
                db.open_tree(&parts[0])
                    .and_then(|t| t.insert(&parts[1], parts[2].as_slice()))
                    .map_err(|e| e.to_string())?;
                n.entries += 1;
            }
            TAG_BLOB if v2 => {
                let mut h = [0u8; 32];
                r.exact(&mut h).map_err(damaged)?;
                let mut l = [0u8; 8];
                r.exact(&mut l).map_err(damaged)?;
                let l = u64::from_le_bytes(l);
                if l > r.left {
                    return Err(damaged("cut short".into()));
                }
                if store.is_none() {
                    store = Some(BlobStore::open(data.join("blobs")).map_err(|e| e.to_string())?);
                }
                let s = store.as_ref().expect("opened above");
                let expected = BlobHash::from_bytes(h);
                let got = s
                    .put_reader(&mut (&mut *r).take(l), l)
                    .map_err(|e| e.to_string())?;
                if got != expected {
                    return Err(format!(
                        "blob {expected} in {} has other bytes ({got}); the restore stopped — restore into a fresh directory from another backup",
                        from.display()
                    ));
                }
                n.blobs += 1;
            }
            _ => return Err(damaged("unknown record".into())),
        }
    }
    db.flush().map_err(|e| e.to_string())?;
    Ok(n)
}

/// The backup's body (everything before the checksum), read in order.
struct Body<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Body<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), String> {
        if buf.len() as u64 > self.left {
            return Err("cut short".into());
        }
        self.inner.read_exact(buf).map_err(|e| e.to_string())?;
        self.left -= buf.len() as u64;
        Ok(())
    }
}

impl<R: Read> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (buf.len() as u64).min(self.left) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_restores_every_tree_and_a_damaged_one_restores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("src")).unwrap();
        db.insert(b"doc/a", b"1".to_vec()).unwrap();
        db.open_tree("accounts.users")
            .unwrap()
            .insert(b"li", b"x".to_vec())
            .unwrap();
        let mut file = Vec::new();
        let blobs = BlobStore::open(dir.path().join("blobs")).unwrap();
        let photo: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let h = blobs.put_bytes(&photo).unwrap();
        assert_eq!(
            export(&db, Some(&blobs), &mut file).unwrap(),
            Counts {
                entries: 2,
                blobs: 1
            }
        );
        let path = dir.path().join("b.bak");
        std::fs::write(&path, &file).unwrap();
        let target = dir.path().join("restored");
        assert_eq!(
            restore(&path, &target).unwrap(),
            Counts {
                entries: 2,
                blobs: 1
            }
        );
        let restored = BlobStore::open(target.join("blobs")).unwrap();
        assert_eq!(restored.read_range(&h, 0, 1 << 20).unwrap(), photo);
        let again = sled::open(target.join("db")).unwrap();
        assert_eq!(&*again.get(b"doc/a").unwrap().unwrap(), b"1");
        assert_eq!(
            &*again
                .open_tree("accounts.users")
                .unwrap()
                .get(b"li")
                .unwrap()
                .unwrap(),
            b"x"
        );
        drop(again);
        // Restoring over an existing database is refused.
        assert!(restore(&path, &target).unwrap_err().contains("already"));
        // A flipped byte or a cut file: refused, nothing written.
        for bad in [
            {
                let mut f = file.clone();
                let i = f.len() / 2;
                f[i] ^= 1;
                f
            },
            file[..file.len() - 5].to_vec(),
        ] {
            std::fs::write(&path, &bad).unwrap();
            let t = dir.path().join(format!("bad{}", bad.len()));
            assert!(restore(&path, &t)
                .unwrap_err()
                .contains("nothing was restored"));
            assert!(!t.join("db").exists());
        }
    }

    /// A file as `server/fuzz`'s backup_restore target makes it from its
    /// input: byte 0 bit 1 puts the header line first, bit 0 appends the
    /// right checksum.
    fn fuzz_file(input: &[u8]) -> Vec<u8> {
        let (mode, rest) = input.split_first().unwrap();
        let mut file = Vec::new();
        if mode & 2 != 0 {
            file.extend_from_slice(MAGIC);
        }
        file.extend_from_slice(rest);
        if mode & 1 != 0 {
            let digest = Sha256::digest(&file);
            file.extend_from_slice(&digest);
        }
        file
    }

    /// A body with its checksum, as a forged file would have it.
    fn with_checksum(body: &[u8]) -> Vec<u8> {
        let mut f = body.to_vec();
        f.extend_from_slice(&Sha256::digest(body));
        f
    }

    #[test]
    fn a_malformed_backup_with_a_good_checksum_restores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |tree: &[u8], k: &[u8], v: &[u8]| {
            let mut rec = vec![TAG_ENTRY];
            for part in [tree, k, v] {
                rec.extend_from_slice(&(part.len() as u32).to_le_bytes());
                rec.extend_from_slice(part);
            }
            rec
        };
        let blob = |bytes: &[u8]| {
            let mut rec = vec![TAG_BLOB];
            rec.extend_from_slice(BlobHash::of(bytes).as_bytes());
            rec.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            rec.extend_from_slice(bytes);
            rec
        };
        let mut inputs: Vec<(String, Vec<u8>)> = vec![
            // An entry, then a record that is none.
            (
                "unknown record".into(),
                with_checksum(&[MAGIC, &entry(b"t", b"k", b"v"), &[9]].concat()),
            ),
            // An entry and a blob, then the file ends without its end mark.
            (
                "no end".into(),
                with_checksum(&[MAGIC, &entry(b"t", b"k", b"v"), &blob(b"photo")].concat()),
            ),
            // A blob whose bytes are not those its name says.
            (
                "blob mismatch".into(),
                with_checksum(
                    &[
                        MAGIC,
                        &entry(b"t", b"k", b"v"),
                        &{
                            let mut b = blob(b"photo");
                            let n = b.len();
                            b[n - 1] ^= 1;
                            b
                        },
                        &[TAG_END],
                    ]
                    .concat(),
                ),
            ),
        ];
        // Every input of the fuzz target that once broke this.
        let regressions = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/regressions/backup_restore");
        for e in std::fs::read_dir(&regressions).unwrap() {
            let e = e.unwrap();
            inputs.push((
                e.file_name().to_string_lossy().into_owned(),
                fuzz_file(&std::fs::read(e.path()).unwrap()),
            ));
        }
        assert!(
            inputs.len() > 3,
            "no regression inputs in {}",
            regressions.display()
        );
        for (i, (name, file)) in inputs.iter().enumerate() {
            let path = dir.path().join("in.backup");
            std::fs::write(&path, file).unwrap();
            // Into a new directory, and into an empty one that exists.
            for existing in [false, true] {
                let data = dir.path().join(format!("data-{i}-{existing}"));
                if existing {
                    std::fs::create_dir(&data).unwrap();
                }
                let err = restore(&path, &data).unwrap_err();
                assert!(!err.is_empty(), "{name}");
                assert!(!data.join("db").exists(), "{name}: {err}");
                assert!(!data.join("blobs").exists(), "{name}: {err}");
                assert_eq!(data.exists(), existing, "{name}: {err}");
                // The directory is as good as new: a good backup restores.
                let good = dir.path().join("good.backup");
                let db = sled::Config::new().temporary(true).open().unwrap();
                db.insert(b"doc/a", b"1".to_vec()).unwrap();
                let mut out = Vec::new();
                export(&db, None, &mut out).unwrap();
                std::fs::write(&good, &out).unwrap();
                assert_eq!(restore(&good, &data).unwrap().entries, 1, "{name}");
            }
        }
    }
}
