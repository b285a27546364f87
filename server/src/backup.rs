//! Backups of the whole data directory while the server runs, and restore
//! into an empty one.
//!
//! A backup is one file: a header line, then for every sled tree every
//! key-value pair as length-prefixed records, then a SHA-256 of everything
//! before it. The server takes it under the write gate (no commit, sign-in
//! or account change lands meanwhile), so it is one consistent moment of
//! documents and accounts together. Restore checks the whole file's
//! checksum before it writes anything.

use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

const MAGIC: &[u8] = b"TPSYNC-BACKUP 1\n";
const TAG_ENTRY: u8 = 1;
const TAG_END: u8 = 2;

/// Writes every tree of `db` to `out`. Returns the number of entries.
pub fn export(db: &sled::Db, out: &mut impl Write) -> Result<u64, String> {
    let mut hash = Sha256::new();
    let mut put = |bytes: &[u8], out: &mut dyn Write| -> Result<(), String> {
        hash.update(bytes);
        out.write_all(bytes).map_err(|e| e.to_string())
    };
    put(MAGIC, out)?;
    let mut n = 0u64;
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
            n += 1;
        }
    }
    put(&[TAG_END], out)?;
    let digest = hash.finalize();
    out.write_all(&digest).map_err(|e| e.to_string())?;
    Ok(n)
}

/// Restores a backup file into `data` (which must not hold a database yet).
/// Returns the number of entries written.
pub fn restore(from: &Path, data: &Path) -> Result<u64, String> {
    let db_path = data.join("db");
    if db_path.exists() {
        return Err(format!(
            "{} holds a database already; restore into a new, empty data directory (and point the server at it)",
            data.display()
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(from)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    let entries = parse(&bytes).map_err(|e| {
        format!(
            "{} is not a complete tpsync backup ({e}); nothing was restored",
            from.display()
        )
    })?;
    std::fs::create_dir_all(data).map_err(|e| e.to_string())?;
    let db = sled::open(&db_path).map_err(|e| e.to_string())?;
    let n = entries.len() as u64;
    for (tree, k, v) in entries {
        db.open_tree(tree)
            .and_then(|t| t.insert(k, v))
            .map_err(|e| e.to_string())?;
    }
    db.flush().map_err(|e| e.to_string())?;
    Ok(n)
}

type Entry<'a> = (&'a [u8], &'a [u8], &'a [u8]);

fn parse(bytes: &[u8]) -> Result<Vec<Entry<'_>>, String> {
    if bytes.len() < MAGIC.len() + 1 + 32 || !bytes.starts_with(MAGIC) {
        return Err("not a backup file".into());
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != digest {
        return Err("the checksum does not match: the file is damaged or cut short".into());
    }
    let mut r = &body[MAGIC.len()..];
    let mut out = Vec::new();
    loop {
        let (&tag, rest) = r.split_first().ok_or("cut short")?;
        r = rest;
        match tag {
            TAG_END if r.is_empty() => return Ok(out),
            TAG_ENTRY => {
                let mut parts = [&[][..]; 3];
                for p in &mut parts {
                    if r.len() < 4 {
                        return Err("cut short".into());
                    }
                    let len = u32::from_le_bytes(r[..4].try_into().unwrap()) as usize;
                    r = &r[4..];
                    if r.len() < len {
                        return Err("cut short".into());
                    }
                    *p = &r[..len];
                    r = &r[len..];
                }
                out.push((parts[0], parts[1], parts[2]));
            }
            _ => return Err("unknown record".into()),
        }
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
        assert_eq!(export(&db, &mut file).unwrap(), 2);
        let path = dir.path().join("b.bak");
        std::fs::write(&path, &file).unwrap();
        let target = dir.path().join("restored");
        assert_eq!(restore(&path, &target).unwrap(), 2);
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
}
