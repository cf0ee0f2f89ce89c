//! A reader for torch `.pt` files that can never run code.
//!
//! A `.pt` is a zip holding `*/data.pkl` (a pickle) and one raw little-endian storage per tensor
//! under `*/data/`. This module interprets the pickle opcodes as data only, with the allowlist of
//! `torch.load(weights_only=True)`: the tensor-rebuild functions, the storage types,
//! `collections.OrderedDict`, and `argparse.Namespace` read as a plain record. Any other global
//! (`os.system`, `builtins.eval`, ...) is refused by name; nothing is imported or called.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use super::safetensors::contiguous_strides;
use super::{Dtype, LoadError, RawTensor, TensorMap};

/// A pickled value, as data.
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// A dict or OrderedDict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A record such as `argparse.Namespace`: its class and its attributes.
    Record { class: String, attrs: Vec<(Value, Value)> },
    Tensor(RawTensor),
    /// An allowlisted global, before it is called.
    Global(Global),
    /// A persistent storage reference.
    Storage { dtype: Dtype, key: String },
    Mark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    RebuildTensor,
    RebuildParameter,
    OrderedDict,
    Namespace,
    Storage(Dtype),
}

impl Value {
    /// `self[key]` for a dict or a record's attribute.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let items = match self {
            Value::Dict(items) | Value::Record { attrs: items, .. } => items,
            _ => return None,
        };
        items.iter().find(|(k, _)| matches!(k, Value::Str(s) if s == key)).map(|(_, v)| v)
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The tensors of a state dict (a dict of name → tensor); other entries are skipped.
    pub fn tensors(&self) -> TensorMap {
        let mut map = TensorMap::new();
        if let Value::Dict(items) = self {
            for (k, v) in items {
                if let (Value::Str(name), Value::Tensor(t)) = (k, v) {
                    map.insert(name.clone(), t.clone());
                }
            }
        }
        map
    }
}

fn allowed_global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("argparse", "Namespace") => Global::Namespace,
        ("torch", storage) => Global::Storage(match storage {
            "DoubleStorage" => Dtype::F64,
            "FloatStorage" => Dtype::F32,
            "HalfStorage" => Dtype::F16,
            "BFloat16Storage" => Dtype::Bf16,
            "LongStorage" => Dtype::I64,
            "IntStorage" => Dtype::I32,
            "ShortStorage" => Dtype::I16,
            "CharStorage" => Dtype::I8,
            "ByteStorage" => Dtype::U8,
            "BoolStorage" => Dtype::Bool,
            _ => return None,
        }),
        _ => return None,
    })
}

/// Reads a torch zip checkpoint into the value its pickle describes.
pub fn load_pt(bytes: &[u8], source_name: &str) -> Result<Value, LoadError> {
    let format_err = |detail: String| LoadError::Format { source_name: source_name.to_string(), format: "torch .pt", detail };
    if bytes.len() >= 2 && bytes[0] == 0x80 {
        return Err(format_err(
            "this is torch's legacy (pre-1.6) serialisation; re-save it with a current torch".into(),
        ));
    }
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format_err(format!("not a zip archive ({e})")))?;
    let pkl = (0..zip.len())
        .filter_map(|i| zip.name_for_index(i).map(str::to_string))
        .find(|n| n.ends_with("data.pkl"))
        .ok_or_else(|| format_err("the zip holds no data.pkl".into()))?;
    let prefix = pkl.trim_end_matches("data.pkl").to_string();
    let mut pickle = Vec::new();
    zip.by_name(&pkl)
        .and_then(|mut f| f.read_to_end(&mut pickle).map_err(Into::into))
        .map_err(|e| format_err(format!("{pkl}: {e}")))?;
    let mut storages = |key: &str| -> Result<Vec<u8>, LoadError> {
        let name = format!("{prefix}data/{key}");
        let mut out = Vec::new();
        zip.by_name(&name)
            .and_then(|mut f| f.read_to_end(&mut out).map_err(Into::into))
            .map_err(|e| format_err(format!("storage {name}: {e}")))?;
        Ok(out)
    };
    Machine { source_name, storage_cache: HashMap::new() }.run(&pickle, &mut storages)
}

struct Machine<'a> {
    source_name: &'a str,
    storage_cache: HashMap<String, Vec<u8>>,
}

impl Machine<'_> {
    fn err(&self, detail: impl Into<String>) -> LoadError {
        LoadError::Format { source_name: self.source_name.to_string(), format: "torch .pt", detail: detail.into() }
    }

    fn run(&mut self, code: &[u8], storages: &mut dyn FnMut(&str) -> Result<Vec<u8>, LoadError>) -> Result<Value, LoadError> {
        let mut stack: Vec<Value> = Vec::new();
        let mut memo: HashMap<u32, Value> = HashMap::new();
        let mut pos = 0usize;
        macro_rules! take {
            ($n:expr) => {{
                let n = $n;
                let s = code.get(pos..pos + n).ok_or_else(|| self.err("the pickle is truncated"))?;
                pos += n;
                s
            }};
        }
        macro_rules! pop {
            () => {
                stack.pop().ok_or_else(|| self.err("the pickle pops an empty stack"))?
            };
        }
        let pop_mark = |stack: &mut Vec<Value>, m: &Self| -> Result<Vec<Value>, LoadError> {
            let at = stack.iter().rposition(|v| matches!(v, Value::Mark)).ok_or_else(|| m.err("MARK expected"))?;
            let items = stack.split_off(at + 1);
            stack.pop();
            Ok(items)
        };
        loop {
            let op = *take!(1).first().unwrap();
            match op {
                0x80 => {
                    take!(1); // PROTO
                }
                0x95 => {
                    take!(8); // FRAME
                }
                b'.' => return stack.pop().ok_or_else(|| self.err("empty pickle")), // STOP
                b'(' => stack.push(Value::Mark),
                b'}' => stack.push(Value::Dict(Vec::new())),
                b']' => stack.push(Value::List(Vec::new())),
                b')' => stack.push(Value::Tuple(Vec::new())),
                b'N' => stack.push(Value::None),
                0x88 => stack.push(Value::Bool(true)),
                0x89 => stack.push(Value::Bool(false)),
                b'J' => stack.push(Value::Int(i32::from_le_bytes(take!(4).try_into().unwrap()) as i64)),
                b'K' => stack.push(Value::Int(take!(1)[0] as i64)),
                b'M' => stack.push(Value::Int(u16::from_le_bytes(take!(2).try_into().unwrap()) as i64)),
                0x8a => {
                    // LONG1
                    let n = take!(1)[0] as usize;
                    let b = take!(n);
                    if n > 8 {
                        return Err(self.err("integer wider than 64 bits"));
                    }
                    let mut buf = if b.last().is_some_and(|x| x & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
                    buf[..n].copy_from_slice(b);
                    stack.push(Value::Int(i64::from_le_bytes(buf)));
                }
                b'G' => stack.push(Value::Float(f64::from_be_bytes(take!(8).try_into().unwrap()))),
                b'X' => {
                    let n = u32::from_le_bytes(take!(4).try_into().unwrap()) as usize;
                    stack.push(Value::Str(String::from_utf8_lossy(take!(n)).into_owned()));
                }
                0x8c => {
                    let n = take!(1)[0] as usize;
                    stack.push(Value::Str(String::from_utf8_lossy(take!(n)).into_owned()));
                }
                0x8d => {
                    let n = u64::from_le_bytes(take!(8).try_into().unwrap()) as usize;
                    stack.push(Value::Str(String::from_utf8_lossy(take!(n)).into_owned()));
                }
                b'B' => {
                    let n = u32::from_le_bytes(take!(4).try_into().unwrap()) as usize;
                    stack.push(Value::Bytes(take!(n).to_vec()));
                }
                b'C' => {
                    let n = take!(1)[0] as usize;
                    stack.push(Value::Bytes(take!(n).to_vec()));
                }
                b'q' => {
                    let k = take!(1)[0] as u32;
                    memo.insert(k, stack.last().cloned().ok_or_else(|| self.err("BINPUT on empty stack"))?);
                }
                b'r' => {
                    let k = u32::from_le_bytes(take!(4).try_into().unwrap());
                    memo.insert(k, stack.last().cloned().ok_or_else(|| self.err("LONG_BINPUT on empty stack"))?);
                }
                0x94 => {
                    let k = memo.len() as u32; // MEMOIZE
                    memo.insert(k, stack.last().cloned().ok_or_else(|| self.err("MEMOIZE on empty stack"))?);
                }
                b'h' => {
                    let k = take!(1)[0] as u32;
                    stack.push(memo.get(&k).cloned().ok_or_else(|| self.err(format!("memo {k} unset")))?);
                }
                b'j' => {
                    let k = u32::from_le_bytes(take!(4).try_into().unwrap());
                    stack.push(memo.get(&k).cloned().ok_or_else(|| self.err(format!("memo {k} unset")))?);
                }
                b't' => {
                    let items = pop_mark(&mut stack, self)?;
                    stack.push(Value::Tuple(items));
                }
                0x85 => {
                    let a = pop!();
                    stack.push(Value::Tuple(vec![a]));
                }
                0x86 => {
                    let b = pop!();
                    let a = pop!();
                    stack.push(Value::Tuple(vec![a, b]));
                }
                0x87 => {
                    let c = pop!();
                    let b = pop!();
                    let a = pop!();
                    stack.push(Value::Tuple(vec![a, b, c]));
                }
                b'l' => {
                    let items = pop_mark(&mut stack, self)?;
                    stack.push(Value::List(items));
                }
                b'd' => {
                    let items = pop_mark(&mut stack, self)?;
                    stack.push(Value::Dict(pairs(items)));
                }
                b'a' => {
                    let v = pop!();
                    match stack.last_mut() {
                        Some(Value::List(l)) => l.push(v),
                        _ => return Err(self.err("APPEND to a non-list")),
                    }
                }
                b'e' => {
                    let items = pop_mark(&mut stack, self)?;
                    match stack.last_mut() {
                        Some(Value::List(l)) => l.extend(items),
                        _ => return Err(self.err("APPENDS to a non-list")),
                    }
                }
                b's' => {
                    let v = pop!();
                    let k = pop!();
                    set_items(stack.last_mut(), vec![(k, v)]).map_err(|e| self.err(e))?;
                }
                b'u' => {
                    let items = pop_mark(&mut stack, self)?;
                    set_items(stack.last_mut(), pairs(items)).map_err(|e| self.err(e))?;
                }
                b'c' => {
                    let module = read_line(code, &mut pos).ok_or_else(|| self.err("truncated GLOBAL"))?;
                    let name = read_line(code, &mut pos).ok_or_else(|| self.err("truncated GLOBAL"))?;
                    stack.push(self.global(&module, &name)?);
                }
                0x93 => {
                    let name = pop!();
                    let module = pop!();
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => stack.push(self.global(&m, &n)?),
                        _ => return Err(self.err("STACK_GLOBAL without names")),
                    }
                }
                b'Q' => {
                    // BINPERSID: ('storage', storage type, key, location, numel)
                    let pid = pop!();
                    let Value::Tuple(items) = pid else { return Err(self.err("persistent id is not a tuple")) };
                    match items.as_slice() {
                        [Value::Str(kind), Value::Global(Global::Storage(dtype)), Value::Str(key), ..] if kind == "storage" => {
                            stack.push(Value::Storage { dtype: *dtype, key: key.clone() })
                        }
                        _ => return Err(self.err("persistent id is not a torch storage")),
                    }
                }
                b'R' | 0x81 => {
                    // REDUCE / NEWOBJ: call an allowlisted global with a tuple of arguments.
                    let args = pop!();
                    let callable = pop!();
                    let Value::Tuple(args) = args else { return Err(self.err("call arguments are not a tuple")) };
                    let Value::Global(g) = callable else { return Err(self.err("call of a value that is not an allowed global")) };
                    stack.push(self.call(g, args, storages)?);
                }
                b'b' => {
                    // BUILD: set a record's state; tensors' and dicts' extra state is dropped.
                    let state = pop!();
                    if let Some(Value::Record { attrs, .. }) = stack.last_mut() {
                        if let Value::Dict(items) = state {
                            attrs.extend(items);
                        }
                    }
                }
                b'0' => {
                    pop!();
                }
                other => return Err(self.err(format!("unsupported pickle opcode 0x{other:02x} at byte {}", pos - 1))),
            }
        }
    }

    fn global(&self, module: &str, name: &str) -> Result<Value, LoadError> {
        allowed_global(module, name)
            .map(Value::Global)
            .ok_or_else(|| LoadError::UnsafePickle { source_name: self.source_name.to_string(), global: format!("{module}.{name}") })
    }

    fn call(
        &mut self,
        g: Global,
        args: Vec<Value>,
        storages: &mut dyn FnMut(&str) -> Result<Vec<u8>, LoadError>,
    ) -> Result<Value, LoadError> {
        match g {
            Global::OrderedDict => Ok(Value::Dict(Vec::new())),
            Global::Namespace => Ok(Value::Record { class: "argparse.Namespace".into(), attrs: Vec::new() }),
            Global::RebuildParameter => match args.into_iter().next() {
                Some(t @ Value::Tensor(_)) => Ok(t),
                _ => Err(self.err("_rebuild_parameter without a tensor")),
            },
            Global::RebuildTensor => {
                let [storage, offset, size, stride, ..] = args.as_slice() else {
                    return Err(self.err("_rebuild_tensor_v2 with too few arguments"));
                };
                let Value::Storage { dtype, key } = storage else { return Err(self.err("tensor without a storage")) };
                let ints = |v: &Value| -> Option<Vec<usize>> {
                    match v {
                        Value::Tuple(xs) => xs.iter().map(|x| x.as_int().and_then(|i| usize::try_from(i).ok())).collect(),
                        _ => None,
                    }
                };
                let (Some(offset), Some(shape), Some(strides)) =
                    (offset.as_int().and_then(|i| usize::try_from(i).ok()), ints(size), ints(stride))
                else {
                    return Err(self.err(format!("storage {key}: malformed size or stride")));
                };
                if strides.len() != shape.len() {
                    return Err(self.err(format!("storage {key}: {} strides for {} dimensions", strides.len(), shape.len())));
                }
                if !self.storage_cache.contains_key(key) {
                    let bytes = storages(key)?;
                    self.storage_cache.insert(key.clone(), bytes);
                }
                let bytes = &self.storage_cache[key];
                let n_elements = bytes.len() / dtype.size();
                let last = offset + shape.iter().zip(&strides).map(|(d, s)| d.saturating_sub(1) * s).sum::<usize>();
                if shape.iter().product::<usize>() > 0 && last >= n_elements {
                    return Err(self.err(format!(
                        "storage {key} holds {n_elements} elements but a tensor of shape {shape:?} reads element {last} (truncated file?)"
                    )));
                }
                let dense = strides == contiguous_strides(&shape);
                let data = if dense && offset == 0 && *dtype == Dtype::F32 && n_elements == shape.iter().product::<usize>() {
                    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
                } else {
                    dtype.gather(bytes, offset, &shape, &strides)
                };
                Ok(Value::Tensor(RawTensor { shape, data, dtype: dtype.name().into() }))
            }
            Global::Storage(_) => Err(self.err("a storage type called as a function")),
        }
    }
}

fn read_line(code: &[u8], pos: &mut usize) -> Option<String> {
    let end = code[*pos..].iter().position(|&b| b == b'\n')?;
    let s = String::from_utf8_lossy(&code[*pos..*pos + end]).into_owned();
    *pos += end + 1;
    Some(s)
}

fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

fn set_items(target: Option<&mut Value>, items: Vec<(Value, Value)>) -> Result<(), String> {
    match target {
        Some(Value::Dict(d)) | Some(Value::Record { attrs: d, .. }) => {
            d.extend(items);
            Ok(())
        }
        _ => Err("SETITEM on a value that is not a dict".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A zip with `archive/data.pkl` = `pickle` and the given storages.
    fn pt(pickle: &[u8], storages: &[(&str, &[u8])]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", opts).unwrap();
        zip.write_all(pickle).unwrap();
        for (k, b) in storages {
            zip.start_file(format!("archive/data/{k}"), opts).unwrap();
            zip.write_all(b).unwrap();
        }
        zip.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn refuses_globals_outside_the_allowlist_by_name() {
        // The classic exploit: os.system('echo pwned') through REDUCE.
        let evil = b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
        let err = load_pt(&pt(evil, &[]), "evil.pt").unwrap_err().to_string();
        assert_eq!(
            err,
            "evil.pt: refused to load `os.system`: a weights file may only rebuild tensors (a pickle naming anything else could run code)"
        );
        let eval = b"\x80\x02cbuiltins\neval\nq\x00.";
        assert!(load_pt(&pt(eval, &[]), "e.pt").unwrap_err().to_string().contains("`builtins.eval`"));
    }

    #[test]
    fn rebuilds_a_strided_tensor_in_an_ordered_dict() {
        // OrderedDict({'w': _rebuild_tensor_v2(storage 0 (FloatStorage, 6), 0, (2, 3), (1, 2), False, OrderedDict())})
        // i.e. the transpose of a 3x2 [[0,1],[2,3],[4,5]].
        let pickle = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wq\x02ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x06tq\x08QK\x00K\x02K\x03\x86q\tK\x01K\x02\x86q\n\x89h\x00)Rq\x0btq\x0cRq\rs.";
        let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let v = load_pt(&pt(pickle, &[("0", &data)]), "ok.pt").unwrap();
        let t = &v.tensors()["w"];
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.data, vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
        // The same file with its storage cut short.
        let err = load_pt(&pt(pickle, &[("0", &data[..20])]), "cut.pt").unwrap_err().to_string();
        assert!(err.contains("storage 0 holds 5 elements but a tensor of shape [2, 3] reads element 5"), "{err}");
    }

    #[test]
    fn not_a_zip_and_truncated_pickle_are_format_errors() {
        let err = load_pt(b"hello", "x.pt").unwrap_err().to_string();
        assert!(err.starts_with("x.pt is not a readable torch .pt file: not a zip archive"), "{err}");
        let err = load_pt(&pt(b"\x80\x02}q\x00X\x05\x00", &[]), "t.pt").unwrap_err().to_string();
        assert!(err.contains("the pickle is truncated"), "{err}");
    }
}
