//! Attachment bytes: limits, resumable upload and download in verified
//! chunk frames (`tpsync-blobs`), over the same blocking agent.
//!
//! An upload asks the server where it stands (`POST …/blobs/{hash}`), then
//! streams frames from there in one request. A cut costs only the frame in
//! flight: the next attempt asks again and resumes from the last frame the
//! server stored. A frame damaged on the way is refused by the server
//! (`chunk_corrupt`) and sent again from the same place. Downloads go the
//! other way: frames into a partial file whose length is the progress, each
//! verified before it is kept, the whole checked against its name at the end.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tpsync_blobs::{encode_frame, BlobHash, BlobHasher, FrameDecoder, DEFAULT_FRAME_BYTES};

use crate::error::ClientError;
use crate::http::{bearer, Client};

/// The media type of chunk-frame bodies, both ways.
pub const FRAMES_CONTENT_TYPE: &str = "application/vnd.tpsync.frames";

/// What the server accepts for one school.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentLimits {
    pub max_attachment_bytes: u64,
    pub max_frame_bytes: u64,
    pub quota_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
    /// Blobs the school's active records name that the server does not hold
    /// (not sent yet, or lost): a device that has them sends them.
    #[serde(default)]
    pub missing: Vec<BlobHash>,
}

/// Where an upload stands on the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    pub hash: BlobHash,
    pub size: u64,
    /// Bytes the server has stored (and synced): the next attempt starts here.
    pub received: u64,
    pub complete: bool,
}

/// Reads frames of a file from an offset, lazily: a request body that never
/// holds the whole file, and stops at the end.
struct FrameReader<'a> {
    file: &'a mut File,
    left: u64,
    frame: usize,
    buf: Vec<u8>,
    pos: usize,
    on_frame: &'a mut dyn FnMut(u64),
    sent: u64,
}

impl Read for FrameReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            if self.left == 0 {
                return Ok(0);
            }
            let n = (self.frame as u64).min(self.left) as usize;
            let mut data = vec![0u8; n];
            self.file.read_exact(&mut data)?;
            self.left -= n as u64;
            self.buf.clear();
            self.pos = 0;
            encode_frame(&data, &mut self.buf);
            self.sent += n as u64;
            (self.on_frame)(self.sent);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Client {
    /// `GET /v1/schools/{school}/attachments/limits`: the size limit and the
    /// school's quota. Learn them before queueing a file.
    pub fn attachment_limits(
        &self,
        access: &str,
        school: &str,
    ) -> Result<AttachmentLimits, ClientError> {
        let resp = self.get(
            &format!("/v1/schools/{school}/attachments/limits"),
            Some(access),
        )?;
        self.read_json(resp, "the attachment limits")
    }

    /// `POST /v1/schools/{school}/blobs/{hash}`: starts an upload of `size`
    /// bytes, or tells where it stands (`complete` if the server already has
    /// the bytes for this school, then nothing needs to travel).
    pub fn begin_upload(
        &self,
        access: &str,
        school: &str,
        hash: &BlobHash,
        size: u64,
    ) -> Result<UploadState, ClientError> {
        let resp = self.post_json(
            &format!("/v1/schools/{school}/blobs/{hash}"),
            Some(access),
            &serde_json::json!({ "size": size }),
        )?;
        self.read_json(resp, "the upload state")
    }

    /// Sends `file` (whose bytes hash to `hash`) from byte `offset` to its
    /// end as frames of `frame_bytes`, in one request. `on_sent` is told the
    /// bytes handed to the network so far (the server may not have them yet;
    /// [`UploadState::received`] in the answer is what it stored).
    // One request's worth of plain arguments; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn upload_from(
        &self,
        access: &str,
        school: &str,
        hash: &BlobHash,
        file: &mut File,
        offset: u64,
        frame_bytes: usize,
        on_sent: &mut dyn FnMut(u64),
    ) -> Result<UploadState, ClientError> {
        let size = file
            .metadata()
            .map_err(|e| ClientError::io("cannot read the attachment", e))?
            .len();
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| ClientError::io("cannot read the attachment", e))?;
        let mut reader = FrameReader {
            file,
            left: size.saturating_sub(offset),
            frame: frame_bytes.max(1),
            buf: Vec::new(),
            pos: 0,
            on_frame: on_sent,
            sent: offset,
        };
        let req = self
            .agent
            .put(self.url(&format!(
                "/v1/schools/{school}/blobs/{hash}?offset={offset}"
            )))
            .config()
            // A 20 MB scan at 50 kbit/s is an hour; the idle timeout still
            // notices a dead link.
            .timeout_per_call(None)
            .build()
            .header("Authorization", bearer(access)?)
            .header("Content-Type", FRAMES_CONTENT_TYPE);
        let resp = self.check(req.send(ureq::SendBody::from_reader(&mut reader)))?;
        self.read_json(resp, "the upload state")
    }

    /// Uploads a whole file, resuming after cuts and sending damaged frames
    /// again, until the server has all of it or `max_attempts` requests in a
    /// row made no progress. `on_progress` is told the bytes the server has
    /// stored after each request.
    pub fn upload_file(
        &self,
        access: &str,
        school: &str,
        hash: &BlobHash,
        path: &Path,
        max_attempts: u32,
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<UploadState, ClientError> {
        let mut file =
            File::open(path).map_err(|e| ClientError::io("cannot open the attachment", e))?;
        let size = file
            .metadata()
            .map_err(|e| ClientError::io("cannot read the attachment", e))?
            .len();
        let max_attempts = max_attempts.max(1);
        let mut stalled = 0u32;
        let mut best: Option<u64> = None;
        let mut last_err: Option<ClientError> = None;
        loop {
            let state = match self.begin_upload(access, school, hash, size) {
                Ok(s) => s,
                Err(e) if e.is_retryable_transfer() => {
                    stalled += 1;
                    if stalled >= max_attempts {
                        return Err(e);
                    }
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            on_progress(state.received);
            if state.complete {
                return Ok(state);
            }
            if best.is_some_and(|b| state.received <= b) {
                stalled += 1;
            } else {
                stalled = 0;
            }
            best = Some(state.received);
            if stalled >= max_attempts {
                return Err(last_err.unwrap_or_else(|| {
                    ClientError::ConnectionLost(format!(
                        "the upload made no progress in {max_attempts} attempts"
                    ))
                }));
            }
            let mut handed = state.received;
            let sent = self.upload_from(
                access,
                school,
                hash,
                &mut file,
                state.received,
                self.link.lock().size(),
                &mut |n| handed = n,
            );
            match sent {
                Ok(s) if s.complete => {
                    self.link.lock().survived(s.received - state.received);
                    on_progress(s.received);
                    return Ok(s);
                }
                Ok(_) => {}
                Err(e) if e.is_retryable_transfer() => {
                    self.link
                        .lock()
                        .cut_after(handed.saturating_sub(state.received));
                    last_err = Some(e);
                }
                // Refused chunk, discarded copy, a race with another attempt:
                // ask where the server stands and go on from there.
                Err(e)
                    if matches!(
                        e.code(),
                        Some(
                            "chunk_corrupt"
                                | "attachment_mismatch"
                                | "offset_mismatch"
                                | "upload_busy"
                        )
                    ) =>
                {
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Downloads a blob into `partial` (appending to what it already holds:
    /// a cut download resumes), verifying each frame; when complete, checks
    /// the whole file against `hash`. Returns the bytes now in `partial`
    /// and whether it is complete. A damaged frame is not kept: the error is
    /// [`ClientError::Protocol`] and the next call fetches from there.
    pub fn download_to(
        &self,
        access: &str,
        school: &str,
        hash: &BlobHash,
        partial: &Path,
        on_progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(u64, bool), ClientError> {
        let io = |e| ClientError::io("cannot write the downloaded attachment", e);
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(partial)
            .map_err(io)?;
        let have = out.metadata().map_err(io)?.len();
        let req = self
            .agent
            .get(self.url(&format!(
                "/v1/schools/{school}/blobs/{hash}?offset={have}&frame={}",
                self.link.lock().size()
            )))
            .config()
            .timeout_per_call(None)
            .build()
            .header("Authorization", bearer(access)?)
            .header("Accept", FRAMES_CONTENT_TYPE);
        let resp = self.check(req.call())?;
        let size: u64 = resp
            .headers()
            .get("x-blob-size")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                ClientError::Protocol(
                    "the download did not state the blob's size (x-blob-size)".into(),
                )
            })?;
        let mut reader = resp.into_body().into_reader();
        let mut decoder = FrameDecoder::new(4 << 20);
        let mut got = have;
        let mut buf = vec![0u8; 32 << 10];
        while got < size {
            let n = match reader.read(&mut buf) {
                Ok(0) => {
                    // Ended early: a cut the network reported as an end.
                    self.link
                        .lock()
                        .cut_after(got - have + decoder.pending() as u64);
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    out.sync_data().map_err(io)?;
                    // Cut: the next attempt uses frames that fit the link.
                    self.link
                        .lock()
                        .cut_after(got - have + decoder.pending() as u64);
                    return Err(self.transport(ureq::Error::from(e)));
                }
            };
            decoder.push(&buf[..n]);
            loop {
                match decoder.next_frame() {
                    Ok(Some(f)) => {
                        if got + f.len() as u64 > size {
                            return Err(ClientError::Protocol(
                                "the download ran past the blob's size".into(),
                            ));
                        }
                        out.write_all(f).map_err(io)?;
                        got += f.len() as u64;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        out.sync_data().map_err(io)?;
                        return Err(ClientError::Protocol(format!(
                            "{e}; {got} bytes are kept, the next attempt fetches the rest"
                        )));
                    }
                }
            }
            on_progress(got, size);
        }
        out.sync_data().map_err(io)?;
        if got < size {
            return Ok((got, false));
        }
        drop(out);
        let mut f = File::open(partial).map_err(io)?;
        let mut h = BlobHasher::new();
        let mut b = vec![0u8; 64 << 10];
        loop {
            let n = f.read(&mut b).map_err(io)?;
            if n == 0 {
                break;
            }
            h.update(&b[..n]);
        }
        let actual = h.finish();
        if actual != *hash {
            let _ = std::fs::remove_file(partial);
            return Err(ClientError::Protocol(format!(
                "the downloaded bytes hash to {actual}, not {hash}; the copy was discarded, download it again"
            )));
        }
        Ok((got, true))
    }
}

/// Chooses the frame size from how far connections get before they are
/// cut. A cut loses the frame in flight (half a frame on average) and every
/// frame costs a 36-byte header, so the bytes wasted per byte between cuts
/// `B` are about `36/f + f/(2B)`, least at `f = sqrt(72·B)`: 16 KiB until
/// the first cut, about 4 KiB if the link drops every 200 KB, 1.3 KiB if it
/// drops every 24 KB.
#[derive(Debug, Default)]
pub(crate) struct FrameSizer {
    /// Bytes handed to the network between cuts, smoothed.
    between_cuts: Option<f64>,
}

impl FrameSizer {
    const MIN: usize = 1024;

    fn size(&self) -> usize {
        match self.between_cuts {
            None => DEFAULT_FRAME_BYTES,
            Some(b) => ((72.0 * b).sqrt() as usize).clamp(Self::MIN, 4 * DEFAULT_FRAME_BYTES),
        }
    }

    /// A request that carried `bytes` without a cut: the link may be
    /// better than thought.
    fn survived(&mut self, bytes: u64) {
        if let Some(old) = self.between_cuts {
            if bytes as f64 > old {
                self.between_cuts = Some(0.5 * old + 0.5 * bytes as f64);
            }
        }
    }

    fn cut_after(&mut self, bytes: u64) {
        let b = bytes.max(1) as f64;
        self.between_cuts = Some(match self.between_cuts {
            None => b,
            Some(old) => 0.5 * old + 0.5 * b,
        });
    }
}

impl ClientError {
    /// A cut, a stall or an unreachable server: worth another attempt.
    pub fn is_retryable_transfer(&self) -> bool {
        matches!(
            self,
            ClientError::ConnectionLost(_) | ClientError::Timeout | ClientError::Unreachable(_)
        ) || matches!(self, ClientError::Protocol(m) if m.contains("next attempt"))
    }
}
