//! A torch `.pt` read as its bytes arrive, each tensor handed on as soon as its storage is whole.
//!
//! `torch.save` writes a zip in one order: `*/data.pkl` first, then small records (`byteorder`,
//! `.format_version`, …) and one raw storage per tensor under `*/data/`, every entry stored (never
//! compressed), its size often given only by a data descriptor after its bytes. This reader takes
//! the entries as they come: it interprets the pickle as soon as it is in (which gives every
//! storage's size), hands each named tensor on as soon as its storage has arrived, and drops the
//! storage, so that a 2.6 GB checkpoint never sits in memory at once. The zip's central directory,
//! at the end, must list exactly the entries read: torch reads a zip by its directory, and the two
//! must not see different files in one.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::pickle::{self, TensorRef, Value};
use super::stream::feed;
use super::{LoadError, RawTensor, TensorMap};

const LOCAL: &[u8] = b"PK\x03\x04";
const CENTRAL: &[u8] = b"PK\x01\x02";
const DESCRIPTOR: &[u8] = b"PK\x07\x08";
const END: &[u8] = b"PK\x05\x06";
const END64: &[u8] = b"PK\x06\x06";
const LOCATOR64: &[u8] = b"PK\x06\x07";

/// The pickle and the records are read whole, up to this many bytes each (and an entry whose size
/// only its data descriptor gives is searched for its end as far): torch's are kilobytes (650M's
/// pickle is ~60 kB). A storage's size comes from the pickle instead.
pub const MAX_RECORD: usize = 64 << 20;

/// Where a [`PtStream`] hands what it reads.
pub trait PtSink {
    /// The pickle is in: the tensors to hand on, under the names the sink knows them by.
    fn pickle(&mut self, root: Value) -> Result<Vec<(String, Rc<TensorRef>)>, LoadError>;
    /// A named tensor, as soon as its storage has arrived.
    fn tensor(&mut self, name: String, tensor: RawTensor) -> Result<(), LoadError>;
}

/// What an entry is to this reader.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Pickle,
    /// `*/data/{key}`, of the size the pickle gives.
    Storage(String),
    /// `*/byteorder`: it must say `little`.
    ByteOrder,
    /// Any other record, skipped.
    Other,
}

/// An entry as its local header gives it.
struct Entry {
    name: String,
    part: Part,
    /// Its bytes, where known before they arrive (from its header, or the pickle for a storage).
    len: Option<u64>,
    /// Whether a data descriptor follows its bytes.
    descriptor: bool,
    /// The file offset of its local header, its key in `PtStream::entries`.
    header_at: u64,
}

enum State {
    /// At the next record's signature.
    Next,
    /// At the start of an entry's bytes; `searched` of them have been searched for a descriptor.
    Data { entry: Entry, searched: usize },
    /// In a skipped entry whose header gave its size, `left` bytes before its end.
    Skip { entry: Entry, left: u64 },
    /// After an entry of `len` bytes, at its data descriptor.
    Descriptor { name: String, len: u64 },
    /// After the directory's end: nothing may follow.
    Done,
}

/// A torch `.pt` arriving in chunks of any size ([`PtStream::push`], then [`PtStream::finish`]).
pub struct PtStream {
    source_name: String,
    /// Bytes received and not yet used; `pending[0]` is at file offset `offset`.
    pending: Vec<u8>,
    offset: u64,
    state: State,
    /// Every entry read, by its local header's offset: its name, its size once known.
    entries: HashMap<u64, (String, Option<u64>)>,
    names: HashSet<String>,
    /// The pickle's name, once its header has been read, and its folder (`archive/`).
    pickle: Option<String>,
    prefix: String,
    /// The bytes of each storage the pickle names.
    storage_bytes: HashMap<String, u64>,
    /// The tensors still to hand on, by storage key.
    wanted: HashMap<String, Vec<(String, Rc<TensorRef>)>>,
    /// The entries the directory has listed, by their local header's offset.
    listed: HashSet<u64>,
}

/// Collects the tensors of a state dict at the pickle's top level.
struct StateDict(TensorMap);

impl PtSink for StateDict {
    fn pickle(&mut self, root: Value) -> Result<Vec<(String, Rc<TensorRef>)>, LoadError> {
        Ok(root.tensor_refs())
    }
    fn tensor(&mut self, name: String, tensor: RawTensor) -> Result<(), LoadError> {
        self.0.insert(name, tensor);
        Ok(())
    }
}

/// The tensors of a whole `.pt` whose pickle holds a state dict at its top level (an SAE's).
pub fn state_dict(bytes: &[u8], source_name: &str) -> Result<TensorMap, LoadError> {
    let mut sink = StateDict(TensorMap::new());
    let mut stream = PtStream::new(source_name);
    stream.push(bytes, &mut sink)?;
    stream.finish()?;
    Ok(sink.0)
}

fn u16_at(b: &[u8], at: usize) -> u64 {
    u16::from_le_bytes([b[at], b[at + 1]]) as u64
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")) as u64
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The values of a zip64 extra field (id 1) in `extra`, in their order, as many as there are.
fn zip64_values(extra: &[u8]) -> Vec<u64> {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let (id, size) = (u16_at(extra, at), u16_at(extra, at + 2) as usize);
        let body = extra.get(at + 4..at + 4 + size).unwrap_or(&[]);
        if id == 1 {
            return body.chunks_exact(8).map(|c| u64_at(c, 0)).collect();
        }
        at += 4 + size;
    }
    Vec::new()
}

/// Whether a data descriptor for an entry of `len` bytes starts at `bytes[at]`, followed by the
/// next record: its length, `Some(None)` if not, `None` until enough bytes have arrived to say.
/// Both forms are read: 32-bit sizes, and the 64-bit sizes of a zip64 entry.
fn descriptor_at(bytes: &[u8], at: usize, len: u64) -> Option<Option<usize>> {
    let next_is_record = |n: usize| bytes[at + n..at + n + 4] == *LOCAL || bytes[at + n..at + n + 4] == *CENTRAL;
    if bytes.len() < at + 20 {
        return None;
    }
    if bytes[at..at + 4] != *DESCRIPTOR {
        return Some(None);
    }
    if u32_at(bytes, at + 8) == len && u32_at(bytes, at + 12) == len && next_is_record(16) {
        return Some(Some(16));
    }
    if bytes.len() < at + 28 {
        return None;
    }
    Some((u64_at(bytes, at + 8) == len && u64_at(bytes, at + 16) == len && next_is_record(24)).then_some(24))
}

impl PtStream {
    pub fn new(source_name: &str) -> Self {
        Self {
            source_name: source_name.to_string(),
            pending: Vec::new(),
            offset: 0,
            state: State::Next,
            entries: HashMap::new(),
            names: HashSet::new(),
            pickle: None,
            prefix: String::new(),
            storage_bytes: HashMap::new(),
            wanted: HashMap::new(),
            listed: HashSet::new(),
        }
    }

    fn bad(&self, detail: String) -> LoadError {
        LoadError::Format { source_name: self.source_name.clone(), format: "torch .pt", detail }
    }

    /// Takes the next `chunk` of the file and hands `sink` the pickle and then every tensor whose
    /// storage it completes.
    pub fn push(&mut self, chunk: &[u8], sink: &mut dyn PtSink) -> Result<(), LoadError> {
        let mut pending = std::mem::take(&mut self.pending);
        let fed = feed(&mut pending, chunk, |bytes| self.take(bytes, sink));
        self.pending = pending;
        fed
    }

    /// Reads what it can of `bytes` (which start at file offset `self.offset`); returns how many
    /// bytes it used.
    fn take(&mut self, bytes: &[u8], sink: &mut dyn PtSink) -> Result<usize, LoadError> {
        let mut at = 0;
        while let Some(used) = self.step(&bytes[at..], sink)? {
            at += used;
            self.offset += used as u64;
        }
        Ok(at)
    }

    /// One record, or as much of a skipped entry as has arrived: the bytes used, `None` when more
    /// must arrive first.
    fn step(&mut self, rest: &[u8], sink: &mut dyn PtSink) -> Result<Option<usize>, LoadError> {
        match std::mem::replace(&mut self.state, State::Next) {
            State::Next => self.record(rest),
            State::Data { entry, searched } => self.data(entry, searched, rest, sink),
            State::Skip { entry, left } => {
                if rest.is_empty() {
                    self.state = State::Skip { entry, left };
                    return Ok(None);
                }
                // Its size came from its header, so no descriptor follows it.
                let n = left.min(rest.len() as u64);
                if left > n {
                    self.state = State::Skip { entry, left: left - n };
                }
                Ok(Some(n as usize))
            }
            State::Descriptor { name, len } => match descriptor_at(rest, 0, len) {
                None => {
                    self.state = State::Descriptor { name, len };
                    Ok(None)
                }
                Some(Some(n)) => Ok(Some(n)),
                Some(None) => Err(self.bad(format!("{name}: its {len} bytes are not followed by the data descriptor its header announces"))),
            },
            State::Done => {
                self.state = State::Done;
                match rest.len() {
                    0 => Ok(None),
                    n => Err(self.bad(format!("{n} bytes follow the end of its zip directory"))),
                }
            }
        }
    }

    /// The record at a signature: a local header, a directory record or the directory's end.
    fn record(&mut self, rest: &[u8]) -> Result<Option<usize>, LoadError> {
        if self.offset == 0 && rest.first() == Some(&0x80) {
            return Err(self.bad("this is torch's legacy (pre-1.6) serialisation; re-save it with a current torch".into()));
        }
        let Some(signature) = rest.get(..4) else { return Ok(None) };
        let need = |n: usize| rest.len() >= n;
        match signature {
            s if s == LOCAL => {
                if !need(30) || !need(30 + u16_at(rest, 26) as usize + u16_at(rest, 28) as usize) {
                    return Ok(None);
                }
                self.local(rest)
            }
            s if s == CENTRAL => {
                if !need(46) {
                    return Ok(None);
                }
                let n = 46 + u16_at(rest, 28) as usize + u16_at(rest, 30) as usize + u16_at(rest, 32) as usize;
                if !need(n) {
                    return Ok(None);
                }
                self.listed_entry(&rest[..n])?;
                Ok(Some(n))
            }
            s if s == END64 => {
                if !need(12) {
                    return Ok(None);
                }
                // Its entry counts are checked against the 32-bit record's, or the entries read.
                let n = u64_at(rest, 4).checked_add(12).filter(|&n| n <= 1 << 16).ok_or_else(|| self.bad("its zip64 directory end is larger than any zip writes".into()))?;
                Ok(need(n as usize).then_some(n as usize))
            }
            s if s == LOCATOR64 => Ok(need(20).then_some(20)),
            s if s == END => {
                if !need(22) || !need(22 + u16_at(rest, 20) as usize) {
                    return Ok(None);
                }
                self.end(u16_at(rest, 10))?;
                self.state = State::Done;
                Ok(Some(22 + u16_at(rest, 20) as usize))
            }
            _ if self.offset == 0 => Err(self.bad("not a zip archive (it does not start with a zip entry)".into())),
            s => Err(self.bad(format!("byte {} holds {s:02x?}, where a zip entry, its directory or its end was expected", self.offset))),
        }
    }

    /// A local header (whole in `rest`): the entry it opens becomes the state.
    fn local(&mut self, rest: &[u8]) -> Result<Option<usize>, LoadError> {
        let (flags, method) = (u16_at(rest, 6), u16_at(rest, 8));
        let (name_len, extra_len) = (u16_at(rest, 26) as usize, u16_at(rest, 28) as usize);
        let name = String::from_utf8_lossy(&rest[30..30 + name_len]).into_owned();
        let extra = &rest[30 + name_len..30 + name_len + extra_len];
        if !self.names.insert(name.clone()) {
            return Err(self.bad(format!("the zip holds {name} twice")));
        }
        if flags & 1 != 0 {
            return Err(self.bad(format!("{name} is encrypted")));
        }
        if method != 0 {
            return Err(self.bad(format!("{name} is compressed (zip method {method}); torch.save stores every entry as it is")));
        }
        let descriptor = flags & 8 != 0;
        let header_len = if descriptor {
            None
        } else {
            let (mut compressed, mut size) = (u32_at(rest, 18), u32_at(rest, 22));
            let mut wide = zip64_values(extra).into_iter();
            if size == u32::MAX as u64 {
                size = wide.next().ok_or_else(|| self.bad(format!("{name}: its size is in a zip64 field it does not have")))?;
            }
            if compressed == u32::MAX as u64 {
                compressed = wide.next().ok_or_else(|| self.bad(format!("{name}: its size is in a zip64 field it does not have")))?;
            }
            if compressed != size {
                return Err(self.bad(format!("{name} is stored, yet its header gives {compressed} bytes stored for {size}")));
            }
            Some(size)
        };
        let part = self.part_of(&name)?;
        let len = match &part {
            Part::Storage(key) => {
                let bytes = self.storage_bytes[key];
                if header_len.is_some_and(|n| n != bytes) {
                    let n = header_len.expect("checked");
                    return Err(self.bad(format!("storage {name} holds {n} bytes where its pickle says {bytes}")));
                }
                Some(bytes)
            }
            _ => header_len,
        };
        if matches!(part, Part::Pickle | Part::ByteOrder) && len.is_some_and(|n| n > MAX_RECORD as u64) {
            return Err(self.bad(format!("{name} claims {} bytes; a torch pickle or record is kilobytes", len.expect("checked"))));
        }
        self.entries.insert(self.offset, (name.clone(), len));
        let entry = Entry { name, part, len, descriptor, header_at: self.offset };
        self.state = match (&entry.part, entry.len) {
            (Part::Other, Some(left)) => State::Skip { entry, left },
            _ => State::Data { entry, searched: 0 },
        };
        Ok(Some(30 + name_len + extra_len))
    }

    /// What the entry `name` is: the pickle is the first `data.pkl`, and a storage is read only
    /// after it (it gives the storage's size and its tensors).
    fn part_of(&mut self, name: &str) -> Result<Part, LoadError> {
        if name.ends_with("data.pkl") {
            if let Some(first) = &self.pickle {
                return Err(self.bad(format!("the zip holds 2 pickles ({first}, {name}): a checkpoint has one")));
            }
            self.prefix = name.trim_end_matches("data.pkl").to_string();
            self.pickle = Some(name.to_string());
            return Ok(Part::Pickle);
        }
        if name.ends_with("byteorder") {
            return Ok(Part::ByteOrder);
        }
        if self.pickle.is_none() && name.contains("data/") {
            return Err(self.bad(format!(
                "{name} comes before the zip's data.pkl: a .pt is read in one pass, its pickle first, as torch.save writes it"
            )));
        }
        Ok(match name.strip_prefix(&format!("{}data/", self.prefix)) {
            Some(key) if self.storage_bytes.contains_key(key) => Part::Storage(key.to_string()),
            _ => Part::Other,
        })
    }

    /// The bytes of an entry, once they are all in (found by their descriptor where the size was
    /// not known).
    fn data(&mut self, entry: Entry, searched: usize, rest: &[u8], sink: &mut dyn PtSink) -> Result<Option<usize>, LoadError> {
        if let Some(len) = entry.len {
            let Some(n) = usize::try_from(len).ok().filter(|&n| rest.len() >= n) else {
                self.state = State::Data { entry, searched };
                return Ok(None);
            };
            self.read_entry(&entry, &rest[..n], sink)?;
            self.state = if entry.descriptor { State::Descriptor { name: entry.name, len } } else { State::Next };
            return Ok(Some(n));
        }
        let mut at = searched;
        let found = loop {
            let Some(p) = rest[at..].windows(4).position(|w| w == DESCRIPTOR).map(|p| at + p) else {
                at = rest.len().saturating_sub(3);
                break None;
            };
            match descriptor_at(rest, p, p as u64) {
                Some(Some(n)) => break Some((p, n)),
                Some(None) => at = p + 1,
                None => {
                    at = p;
                    break None;
                }
            }
        };
        let Some((len, descriptor)) = found else {
            if at > MAX_RECORD {
                return Err(self.bad(format!("{}: no end within its first {} MiB (a record of torch's is kilobytes)", entry.name, MAX_RECORD >> 20)));
            }
            self.state = State::Data { entry, searched: at };
            return Ok(None);
        };
        self.entries.get_mut(&entry.header_at).expect("its header was read").1 = Some(len as u64);
        self.read_entry(&entry, &rest[..len], sink)?;
        Ok(Some(len + descriptor))
    }

    /// Uses the whole bytes of `entry`.
    fn read_entry(&mut self, entry: &Entry, bytes: &[u8], sink: &mut dyn PtSink) -> Result<(), LoadError> {
        match &entry.part {
            Part::Pickle => {
                let root = pickle::parse(bytes, &self.source_name)?;
                let mut sizes = Vec::new();
                root.each_tensor(&mut |t| sizes.push((t.storage.clone(), t.storage_bytes() as u64)));
                for (key, bytes) in sizes {
                    if *self.storage_bytes.entry(key.clone()).or_insert(bytes) != bytes {
                        return Err(self.bad(format!("the pickle gives storage {key} two sizes")));
                    }
                }
                for (name, t) in sink.pickle(root)? {
                    self.wanted.entry(t.storage.clone()).or_default().push((name, t));
                }
            }
            Part::Storage(key) => {
                for (name, t) in self.wanted.remove(key).unwrap_or_default() {
                    sink.tensor(name, t.read(bytes))?;
                }
            }
            Part::ByteOrder if bytes != b"little" => {
                let order = String::from_utf8_lossy(bytes);
                return Err(self.bad(format!("its storages are in \"{order}\" byte order; plmscope reads little-endian ones")));
            }
            Part::ByteOrder | Part::Other => {}
        }
        Ok(())
    }

    /// A directory record (whole): it must describe an entry read, as it was read.
    fn listed_entry(&mut self, record: &[u8]) -> Result<(), LoadError> {
        let name_len = u16_at(record, 28) as usize;
        let name = String::from_utf8_lossy(&record[46..46 + name_len]).into_owned();
        let extra = &record[46 + name_len..46 + name_len + u16_at(record, 30) as usize];
        let (mut compressed, mut size, mut at) = (u32_at(record, 20), u32_at(record, 24), u32_at(record, 42));
        let mut wide = zip64_values(extra).into_iter();
        for field in [&mut size, &mut compressed, &mut at] {
            if *field == u32::MAX as u64 {
                *field = wide.next().unwrap_or(u64::MAX);
            }
        }
        let same = self.entries.get(&at).is_some_and(|(n, len)| *n == name && *len == Some(size)) && compressed == size && u16_at(record, 10) == 0;
        if !same {
            return Err(self.bad(format!(
                "its zip directory lists {name} ({size} bytes at byte {at}), which is not an entry it holds: torch would read another file than this reader"
            )));
        }
        if !self.listed.insert(at) {
            return Err(self.bad(format!("its zip directory lists {name} twice")));
        }
        Ok(())
    }

    /// The directory's end, which says `count` entries (`0xffff`: see its zip64 record).
    fn end(&mut self, count: u64) -> Result<(), LoadError> {
        let held = self.entries.len();
        if self.listed.len() != held {
            return Err(self.bad(format!("its zip directory lists {} entries, but it holds {held}", self.listed.len())));
        }
        if count != 0xffff && count as usize != held {
            return Err(self.bad(format!("its zip directory's end counts {count} entries, but it holds {held}")));
        }
        if self.pickle.is_none() {
            return Err(self.bad("the zip holds no data.pkl".into()));
        }
        let mut missing: Vec<_> = self.wanted.iter().flat_map(|(key, ts)| ts.iter().map(move |(name, _)| format!("{name} (storage {key})"))).collect();
        missing.sort();
        if let Some(first) = missing.first() {
            return Err(self.bad(format!("{} tensors have no storage in the zip, the first {first}", missing.len())));
        }
        Ok(())
    }

    /// Says whether the file arrived whole, to the end of its zip directory.
    pub fn finish(self) -> Result<(), LoadError> {
        let received = self.offset + self.pending.len() as u64;
        let place = match &self.state {
            State::Done => return Ok(()),
            State::Data { entry, .. } | State::Skip { entry, .. } => format!("inside {}", entry.name),
            State::Descriptor { name, .. } => format!("after {name}, before its data descriptor"),
            State::Next if !self.listed.is_empty() => "inside its zip directory".into(),
            State::Next if received == 0 => "before anything".into(),
            State::Next => "before its zip directory".into(),
        };
        Err(self.bad(format!("it ends after {received} bytes, {place} (a download cut short?)")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    /// `{"w": a [2, 3] view of storage 0 (FloatStorage, `numel` elements)}`.
    fn pickle(numel: u8) -> Vec<u8> {
        let mut p = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK".to_vec();
        p.extend([numel]);
        p.extend(b"tQK\x00K\x02K\x03\x86K\x03K\x01\x86\x89ccollections\nOrderedDict\n)RtRs.");
        p
    }

    fn floats(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    /// A zip of `entries`, each stored (zip64 where `large`).
    fn zip_with(entries: &[(&str, &[u8])], method: zip::CompressionMethod, large: bool) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default().compression_method(method).large_file(large);
        for (name, bytes) in entries {
            zip.start_file(*name, opts).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        buf.into_inner()
    }

    fn stored(entries: &[(&str, &[u8])]) -> Vec<u8> {
        zip_with(entries, zip::CompressionMethod::Stored, false)
    }

    fn err(bytes: &[u8]) -> String {
        let e = state_dict(bytes, "x.pt").unwrap_err().to_string();
        e.strip_prefix("x.pt is not a readable torch .pt file: ").unwrap_or(&e).to_string()
    }

    #[test]
    fn reads_sized_and_zip64_entries_in_any_chunks() {
        let data = floats(6);
        for large in [false, true] {
            let bytes = zip_with(&[("a/data.pkl", &pickle(6)), ("a/byteorder", b"little"), ("a/data/0", &data), ("a/version", b"3\n")], zip::CompressionMethod::Stored, large);
            for cut in [1, 2, 29, 1000, bytes.len()] {
                let mut got = StateDict(TensorMap::new());
                let mut stream = PtStream::new("x.pt");
                for chunk in bytes.chunks(cut) {
                    stream.push(chunk, &mut got).unwrap();
                }
                stream.finish().unwrap();
                assert_eq!(got.0["w"].data, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "zip64 {large}, chunks of {cut}");
            }
        }
    }

    #[test]
    fn a_storage_of_another_size_than_its_pickle_says_is_refused() {
        let bytes = stored(&[("a/data.pkl", &pickle(6)), ("a/data/0", &floats(5))]);
        assert_eq!(err(&bytes), "storage a/data/0 holds 20 bytes where its pickle says 24");
        let bytes = stored(&[("a/data.pkl", &pickle(5)), ("a/data/0", &floats(5))]);
        assert_eq!(err(&bytes), "storage 0 holds 5 elements but a tensor of shape [2, 3] reads element 5");
    }

    #[test]
    fn a_tensor_without_its_storage_is_named() {
        let bytes = stored(&[("a/data.pkl", &pickle(6))]);
        assert_eq!(err(&bytes), "1 tensors have no storage in the zip, the first w (storage 0)");
        assert_eq!(err(&stored(&[("a/version", b"3\n")])), "the zip holds no data.pkl");
    }

    #[test]
    fn what_torch_save_never_writes_is_refused_in_words() {
        let data = floats(6);
        let mut deflated = stored(&[("a/data.pkl", &pickle(6)), ("a/data/0", &data)]);
        deflated[8] = 8;
        assert_eq!(err(&deflated), "a/data.pkl is compressed (zip method 8); torch.save stores every entry as it is");
        let early = stored(&[("a/data/0", &data), ("a/data.pkl", &pickle(6))]);
        assert_eq!(err(&early), "a/data/0 comes before the zip's data.pkl: a .pt is read in one pass, its pickle first, as torch.save writes it");
        let big = stored(&[("a/data.pkl", &pickle(6)), ("a/byteorder", b"big"), ("a/data/0", &data)]);
        assert_eq!(err(&big), "its storages are in \"big\" byte order; plmscope reads little-endian ones");
        assert_eq!(err(b"hello"), "not a zip archive (it does not start with a zip entry)");
        assert_eq!(err(b"\x80\x02}q\x00."), "this is torch's legacy (pre-1.6) serialisation; re-save it with a current torch");
        assert_eq!(err(b""), "it ends after 0 bytes, before anything (a download cut short?)");
    }

    /// torch reads a zip by its directory: one that points elsewhere than the entries read would
    /// have torch and this reader see two files.
    #[test]
    fn a_directory_that_disagrees_with_the_entries_is_refused() {
        let data = floats(6);
        let honest = stored(&[("a/data.pkl", &pickle(6)), ("a/data/0", &data)]);
        let at = honest.windows(4).rposition(|w| w == CENTRAL).unwrap();
        let mut resized = honest.clone();
        resized[at + 24] ^= 1;
        resized[at + 20] ^= 1;
        let size = u32_at(&resized, at + 24);
        let offset = u32_at(&resized, at + 42);
        assert_eq!(
            err(&resized),
            format!("its zip directory lists a/data/0 ({size} bytes at byte {offset}), which is not an entry it holds: torch would read another file than this reader")
        );
        let end = honest.windows(4).rposition(|w| w == END).unwrap();
        let mut miscounted = honest.clone();
        miscounted[end + 10] = 3;
        assert_eq!(err(&miscounted), "its zip directory's end counts 3 entries, but it holds 2");
        let mut unlisted = honest.clone();
        unlisted.splice(at..end, []);
        assert_eq!(err(&unlisted), "its zip directory lists 1 entries, but it holds 2");
        // The pickle's record in place of the storage's: both entries counted, one of them unlisted.
        let first = honest.windows(4).position(|w| w == CENTRAL).unwrap();
        let mut twice = honest[..at].to_vec();
        twice.extend_from_slice(&honest[first..at]);
        twice.extend_from_slice(&honest[end..]);
        assert_eq!(err(&twice), "its zip directory lists a/data.pkl twice");
    }
}
