//! A lossless, smaller form of a list of Automerge changes for the wire.
//!
//! An Automerge change chunk is `magic, checksum, type, length, body`, and
//! its body starts with the 32-byte hashes of the changes it depends on. In a
//! day's sync almost every dependency is the change just before it in the
//! same batch, and the checksum is the first 4 bytes of the change's own hash,
//! so both can be rebuilt by the receiver. A packed change keeps the rest of
//! the body verbatim; the receiver rebuilds the exact chunk, whose hash and
//! checksum Automerge then verifies as for any change.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const CHANGE_CHUNK: u8 = 1;

/// A dependency: an earlier change of the same batch, or a full hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Dep {
    Earlier(u32),
    Hash([u8; 32]),
}

/// One change: its dependencies and the rest of its body, or (for a chunk
/// this codec does not recognise) the chunk as it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PackedChange {
    Packed { deps: Vec<Dep>, rest: Vec<u8> },
    Raw(Vec<u8>),
}

fn read_uleb(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut r = bytes;
    let v = leb128::read::unsigned(&mut r).ok()?;
    Some((v, bytes.len() - r.len()))
}

fn chunk_hash(body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut header = vec![CHANGE_CHUNK];
    leb128::write::unsigned(&mut header, body.len() as u64).expect("write to Vec");
    h.update(&header);
    h.update(body);
    h.finalize().into()
}

/// An uncompressed change chunk taken apart: its hash, its dependencies,
/// and the rest of its body.
type Parts<'a> = ([u8; 32], Vec<[u8; 32]>, &'a [u8]);

fn split(chunk: &[u8]) -> Option<Parts<'_>> {
    if chunk.len() < 10 || chunk[..4] != MAGIC || chunk[8] != CHANGE_CHUNK {
        return None;
    }
    let (len, n) = read_uleb(&chunk[9..])?;
    let body = chunk.get(9 + n..)?;
    if body.len() as u64 != len {
        return None;
    }
    let hash = chunk_hash(body);
    if hash[..4] != chunk[4..8] {
        return None;
    }
    let (count, mut at) = read_uleb(body)?;
    let mut deps = Vec::new();
    for _ in 0..count {
        deps.push(body.get(at..at + 32)?.try_into().ok()?);
        at += 32;
    }
    Some((hash, deps, &body[at..]))
}

/// Packs change chunks given in causal order.
pub fn pack(chunks: &[&[u8]]) -> Vec<PackedChange> {
    let mut index: std::collections::HashMap<[u8; 32], u32> = Default::default();
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| match split(chunk) {
            Some((hash, deps, rest)) => {
                let deps = deps
                    .into_iter()
                    .map(|d| {
                        index
                            .get(&d)
                            .map(|&j| Dep::Earlier(j))
                            .unwrap_or(Dep::Hash(d))
                    })
                    .collect();
                index.insert(hash, i as u32);
                PackedChange::Packed {
                    deps,
                    rest: rest.to_vec(),
                }
            }
            None => PackedChange::Raw(chunk.to_vec()),
        })
        .collect()
}

/// Rebuilds the exact change chunks. Errors (never panics) on a reference to
/// a change that is not earlier in the batch.
pub fn unpack(packed: &[PackedChange]) -> Result<Vec<Vec<u8>>, String> {
    let mut hashes: Vec<Option<[u8; 32]>> = Vec::with_capacity(packed.len());
    let mut out = Vec::with_capacity(packed.len());
    for (i, p) in packed.iter().enumerate() {
        match p {
            PackedChange::Raw(bytes) => {
                hashes.push(split(bytes).map(|(h, _, _)| h));
                out.push(bytes.clone());
            }
            PackedChange::Packed { deps, rest } => {
                let mut body = Vec::with_capacity(rest.len() + deps.len() * 32 + 2);
                leb128::write::unsigned(&mut body, deps.len() as u64).expect("write to Vec");
                for d in deps {
                    let hash = match d {
                        Dep::Hash(h) => *h,
                        Dep::Earlier(j) => hashes
                            .get(*j as usize)
                            .filter(|_| (*j as usize) < i)
                            .copied()
                            .flatten()
                            .ok_or_else(|| format!("change {i} depends on change {j}, which is not an earlier change of the batch"))?,
                    };
                    body.extend_from_slice(&hash);
                }
                body.extend_from_slice(rest);
                let hash = chunk_hash(&body);
                let mut chunk = Vec::with_capacity(body.len() + 14);
                chunk.extend_from_slice(&MAGIC);
                chunk.extend_from_slice(&hash[..4]);
                chunk.push(CHANGE_CHUNK);
                leb128::write::unsigned(&mut chunk, body.len() as u64).expect("write to Vec");
                chunk.extend_from_slice(&body);
                hashes.push(Some(hash));
                out.push(chunk);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ROOT};

    fn changes(n: usize) -> Vec<Vec<u8>> {
        let mut doc = Automerge::new();
        for i in 0..n {
            let mut tx = doc.transaction();
            tx.put(ROOT, format!("k{i}"), "x".repeat(i * 40)).unwrap();
            tx.commit();
        }
        doc.get_changes(&[])
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect()
    }

    #[test]
    fn pack_then_unpack_gives_the_same_bytes_and_saves_the_hashes() {
        let raw = changes(20);
        let refs: Vec<&[u8]> = raw.iter().map(|c| &c[..]).collect();
        let packed = pack(&refs);
        assert!(packed
            .iter()
            .all(|p| matches!(p, PackedChange::Packed { .. })));
        assert_eq!(unpack(&packed).unwrap(), raw);
        let before: usize = raw.iter().map(Vec::len).sum();
        let after = postcard::to_stdvec(&packed).unwrap().len();
        assert!(after + 19 * 32 <= before, "{after} vs {before}");
    }

    #[test]
    fn a_batch_not_starting_at_the_beginning_keeps_outside_hashes() {
        let raw = changes(5);
        let refs: Vec<&[u8]> = raw[2..].iter().map(|c| &c[..]).collect();
        let packed = pack(&refs);
        assert!(
            matches!(&packed[0], PackedChange::Packed { deps, .. } if matches!(deps[0], Dep::Hash(_)))
        );
        assert_eq!(unpack(&packed).unwrap(), raw[2..].to_vec());
    }

    #[test]
    fn forward_and_dangling_references_are_errors() {
        let raw = changes(3);
        let refs: Vec<&[u8]> = raw.iter().map(|c| &c[..]).collect();
        let mut packed = pack(&refs);
        if let PackedChange::Packed { deps, .. } = &mut packed[1] {
            deps[0] = Dep::Earlier(2);
        }
        assert!(unpack(&packed).is_err());
        if let PackedChange::Packed { deps, .. } = &mut packed[1] {
            deps[0] = Dep::Earlier(u32::MAX);
        }
        assert!(unpack(&packed).is_err());
        assert_eq!(
            unpack(&[PackedChange::Raw(b"junk".to_vec())]).unwrap(),
            vec![b"junk".to_vec()]
        );
    }
}
