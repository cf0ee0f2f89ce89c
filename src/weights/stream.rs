//! A safetensors file read as its bytes arrive, each tensor handed on as soon as it is whole.
//!
//! The page's downloads and the CLI's file reads push chunks of any size; the reader keeps only
//! the header and the bytes of the tensor being filled, so a 2.6 GB checkpoint never sits in
//! memory at once. The header is checked by the `safetensors` crate's own rules (offsets in order,
//! without gaps, each the size of its shape), before any tensor is handed on.

use safetensors::tensor::{Metadata, TensorInfo};

use super::{safetensors::raw_tensor, LoadError, RawTensor};

/// safetensors' own limit on the JSON header.
const MAX_HEADER: usize = 100_000_000;

struct Header {
    /// File offset of the first tensor's first byte.
    data_start: usize,
    /// Tensors in the order of their bytes.
    tensors: Vec<(String, TensorInfo)>,
    /// The next tensor to hand on.
    next: usize,
}

impl Header {
    fn file_len(&self) -> usize {
        self.data_start + self.tensors.last().map_or(0, |(_, t)| t.data_offsets.1)
    }
}

/// Gives `take` the bytes a streamed reader kept from earlier chunks followed by `chunk`; `take`
/// reads what it can and says how many bytes it used, and the rest is kept in `pending`. A whole
/// file given at once is read in place, never copied.
pub(super) fn feed(pending: &mut Vec<u8>, chunk: &[u8], take: impl FnOnce(&[u8]) -> Result<usize, LoadError>) -> Result<(), LoadError> {
    if pending.is_empty() {
        let used = take(chunk)?;
        pending.extend_from_slice(&chunk[used..]);
    } else {
        pending.extend_from_slice(chunk);
        let used = take(pending)?;
        pending.drain(..used);
    }
    Ok(())
}

pub struct SafetensorsStream {
    source_name: String,
    /// Bytes received and not yet handed on; `pending[0]` is at file offset `offset`.
    pending: Vec<u8>,
    offset: usize,
    header: Option<Header>,
}

impl SafetensorsStream {
    pub fn new(source_name: &str) -> Self {
        Self { source_name: source_name.to_string(), pending: Vec::new(), offset: 0, header: None }
    }

    fn bad(&self, detail: String) -> LoadError {
        LoadError::Format { source_name: self.source_name.clone(), format: "safetensors", detail }
    }

    /// The file's length, once its header has arrived.
    pub fn expected_len(&self) -> Option<usize> {
        self.header.as_ref().map(Header::file_len)
    }

    /// Takes the next `chunk` of the file and hands every tensor it completes to `emit`, in file
    /// order, its values converted to f32.
    pub fn push(&mut self, chunk: &[u8], emit: &mut dyn FnMut(String, RawTensor) -> Result<(), LoadError>) -> Result<(), LoadError> {
        let mut pending = std::mem::take(&mut self.pending);
        let fed = feed(&mut pending, chunk, |bytes| self.take(bytes, emit));
        self.pending = pending;
        fed
    }

    /// Reads what it can of `bytes` (which start at file offset `self.offset`): the header, then
    /// whole tensors. Returns how many bytes it used.
    fn take(&mut self, bytes: &[u8], emit: &mut dyn FnMut(String, RawTensor) -> Result<(), LoadError>) -> Result<usize, LoadError> {
        let base = self.offset;
        if self.header.is_none() {
            let Some(len) = bytes.get(..8) else { return Ok(0) };
            let n = u64::from_le_bytes(len.try_into().expect("8 bytes"));
            let n = usize::try_from(n).ok().filter(|&n| n <= MAX_HEADER).ok_or_else(|| {
                self.bad(format!("its header claims {n} bytes, over safetensors' limit of {MAX_HEADER}"))
            })?;
            let Some(text) = bytes.get(8..8 + n) else { return Ok(0) };
            let metadata: Metadata = serde_json::from_slice(text).map_err(|e| self.bad(format!("its header: {e}")))?;
            let tensors = metadata
                .offset_keys()
                .into_iter()
                .map(|name| {
                    let info = metadata.info(&name).expect("a key of the metadata").clone();
                    (name, info)
                })
                .collect();
            let header = Header { data_start: 8 + n, tensors, next: 0 };
            // Offsets are checked as contiguous, so the last end bounds every other: in a 32-bit
            // build a hostile header could otherwise name bytes past the address space.
            let last = header.tensors.last().map_or(0, |(_, t)| t.data_offsets.1);
            if header.data_start.checked_add(last).is_none() {
                return Err(self.bad(format!("its tensors end {last} bytes past its header, more than this build can address")));
            }
            self.header = Some(header);
            self.offset = 8 + n;
        }
        let header = self.header.as_mut().expect("the header was read");
        if base + bytes.len() > header.file_len() {
            let (len, extra) = (header.file_len(), base + bytes.len() - header.file_len());
            return Err(self.bad(format!("{extra} bytes follow its last tensor (its header accounts for {len})")));
        }
        while let Some((name, info)) = header.tensors.get(header.next) {
            let (start, end) = (header.data_start + info.data_offsets.0, header.data_start + info.data_offsets.1);
            if end > base + bytes.len() {
                break;
            }
            let data = &bytes[start - base..end - base];
            let t = raw_tensor(info.dtype, info.shape.clone(), data);
            header.next += 1;
            self.offset = end;
            emit(name.clone(), t)?;
        }
        Ok(self.offset - base)
    }

    /// Says whether the file arrived whole: every tensor, and nothing after them.
    pub fn finish(self) -> Result<(), LoadError> {
        let received = self.offset + self.pending.len();
        let Some(header) = &self.header else {
            return Err(self.bad(format!("it ends after {received} bytes, inside its header")));
        };
        let len = header.file_len();
        if received < len {
            let missing = header.tensors.len() - header.next;
            return Err(self.bad(format!("it ends after {received} of its {len} bytes: {missing} tensors are missing or cut short")));
        }
        Ok(())
    }
}
