//! The pickle of a torch `.pt`, read so that it can never run code.
//!
//! A `.pt` is a zip holding `*/data.pkl` (a pickle) and one raw little-endian storage per tensor
//! under `*/data/` ([`super::pt`] reads the zip). This module interprets the pickle opcodes as data
//! only, with the allowlist of `torch.load(weights_only=True)`: the tensor-rebuild functions, the
//! storage types, `collections.OrderedDict`, and `argparse.Namespace` read as a plain record. Any
//! other global (`os.system`, `builtins.eval`, ...) is refused by name; nothing is imported or
//! called. Tensors come out as [`TensorRef`]s, views of storages that arrive later in the file.

use std::collections::HashMap;
use std::rc::Rc;

use super::safetensors::contiguous_strides;
use super::{Dtype, LoadError, RawTensor};

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
    /// Shared, as Python shares the object: a memo reference costs no copy.
    Tensor(Rc<TensorRef>),
    /// An allowlisted global, before it is called.
    Global(Global),
    /// A persistent storage reference: its element type, its key, how many elements it holds.
    Storage { dtype: Dtype, key: String, numel: usize },
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

    /// Takes `self[key]` out of a dict or record.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let items = match self {
            Value::Dict(items) | Value::Record { attrs: items, .. } => items,
            _ => return None,
        };
        let at = items.iter().position(|(k, _)| matches!(k, Value::Str(s) if s == key))?;
        Some(items.remove(at).1)
    }

    /// The tensors of a state dict (a dict of name → tensor), in its order; other entries are skipped.
    pub fn tensor_refs(&self) -> Vec<(String, Rc<TensorRef>)> {
        let Value::Dict(items) = self else { return Vec::new() };
        items
            .iter()
            .filter_map(|(k, v)| match (k, v) {
                (Value::Str(name), Value::Tensor(t)) => Some((name.clone(), t.clone())),
                _ => None,
            })
            .collect()
    }

    /// Calls `f` on every tensor anywhere in this value (nesting is bounded by [`MAX_DEPTH`]).
    pub fn each_tensor(&self, f: &mut dyn FnMut(&TensorRef)) {
        match self {
            Value::Tensor(t) => f(t),
            Value::Tuple(xs) | Value::List(xs) => xs.iter().for_each(|x| x.each_tensor(f)),
            Value::Dict(items) | Value::Record { attrs: items, .. } => items.iter().for_each(|(k, v)| {
                k.each_tensor(f);
                v.each_tensor(f);
            }),
            _ => {}
        }
    }

    /// Nodes a deep copy of this value makes (a tensor is one: it is shared), counted up to
    /// `cap` only, so that counting costs no more than the budget it is checked against.
    fn size(&self, cap: usize) -> usize {
        let mut n = 1;
        let add = |v: &Value, n: &mut usize| {
            if *n <= cap {
                *n += v.size(cap - *n);
            }
        };
        match self {
            Value::Tuple(xs) | Value::List(xs) => xs.iter().for_each(|x| add(x, &mut n)),
            Value::Dict(items) | Value::Record { attrs: items, .. } => items.iter().for_each(|(k, v)| {
                add(k, &mut n);
                add(v, &mut n);
            }),
            Value::Str(text) => n += text.len() / 64,
            Value::Bytes(b) => n += b.len() / 64,
            _ => {}
        }
        n
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

/// A tensor as the pickle describes it: a strided view of a storage whose bytes come later in
/// the file, checked against the storage's size as the pickle gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// The storage's key: its bytes are the zip entry `*/data/{key}`.
    pub storage: String,
    pub dtype: Dtype,
    /// Elements the storage holds, as its persistent id says.
    pub storage_numel: usize,
    /// Offset and strides in elements.
    pub offset: usize,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
}

impl TensorRef {
    /// The bytes its storage's entry holds (checked not to overflow when the pickle was read).
    pub fn storage_bytes(&self) -> usize {
        self.storage_numel * self.dtype.size()
    }

    /// Its values, from the `storage_bytes()` bytes of its storage.
    pub fn read(&self, storage: &[u8]) -> RawTensor {
        debug_assert_eq!(storage.len(), self.storage_bytes());
        let dense = self.strides == contiguous_strides(&self.shape);
        let numel: usize = self.shape.iter().product();
        let data = if numel == 0 {
            // Its offset was never checked against the storage: nothing is read.
            Vec::new()
        } else if dense {
            // A state dict's tensors are dense: a slice of the storage, at the speed of a copy.
            let size = self.dtype.size();
            self.dtype.dense(&storage[self.offset * size..(self.offset + numel) * size])
        } else {
            self.dtype.gather(storage, self.offset, &self.shape, &self.strides)
        };
        RawTensor { shape: self.shape.clone(), data, dtype: self.dtype.name().into() }
    }
}

/// Interprets `code`, the pickle of `source_name`, as data.
pub fn parse(code: &[u8], source_name: &str) -> Result<Value, LoadError> {
    // The memo's copies may make this many nodes: one per byte of pickle, more than real pickles
    // need (a memo fetch is a 2-byte opcode that copies a global, a string or a small tuple).
    let budget = NODE_BUDGET_BASE + NODE_BUDGET_PER_BYTE * code.len();
    Machine { source_name, budget }.run(code)
}

/// Containers inside containers, at most: a state dict is 4 or 5 deep; Clone and Drop recurse, and
/// the browser's stack is 1 MiB.
pub const MAX_DEPTH: u32 = 100;
/// Nodes the memo's copies may make: this many, plus [`NODE_BUDGET_PER_BYTE`] per byte of pickle.
/// A node is a [`Value`] (48 bytes), so a memo bomb stops within 3 MiB + 48 bytes per byte.
pub const NODE_BUDGET_BASE: usize = 1 << 16;
pub const NODE_BUDGET_PER_BYTE: usize = 1;

struct Machine<'a> {
    source_name: &'a str,
    /// Nodes the memo's copies may still make.
    budget: usize,
}

impl Machine<'_> {
    fn err(&self, detail: impl Into<String>) -> LoadError {
        LoadError::Format { source_name: self.source_name.to_string(), format: "torch .pt", detail: detail.into() }
    }

    /// Charges `n` nodes of copying to the budget.
    fn charge(&mut self, n: usize) -> Result<(), LoadError> {
        self.budget = self.budget.checked_sub(n).ok_or_else(|| {
            self.err("the pickle copies its memo into more values than a checkpoint of its size holds (a memo bomb?)")
        })?;
        Ok(())
    }

    /// A deep copy of a memo value, paid for from the budget.
    fn copy(&mut self, v: &(Value, u32)) -> Result<(Value, u32), LoadError> {
        let n = v.0.size(self.budget);
        self.charge(n)?;
        Ok(v.clone())
    }

    fn run(&mut self, code: &[u8]) -> Result<Value, LoadError> {
        // Each value with its nesting depth (0 for a scalar), so that no container grows deeper
        // than MAX_DEPTH without walking it.
        let mut stack: Vec<(Value, u32)> = Vec::new();
        let mut memo: HashMap<u32, (Value, u32)> = HashMap::new();
        let mut pos = 0usize;
        macro_rules! take {
            ($n:expr) => {{
                let n: usize = $n;
                let s = pos.checked_add(n).and_then(|end| code.get(pos..end)).ok_or_else(|| self.err("the pickle is truncated"))?;
                pos += n;
                s
            }};
        }
        macro_rules! pop {
            () => {
                stack.pop().ok_or_else(|| self.err("the pickle pops an empty stack"))?
            };
        }
        let pop_mark = |stack: &mut Vec<(Value, u32)>, m: &Self| -> Result<Vec<(Value, u32)>, LoadError> {
            let at = stack.iter().rposition(|(v, _)| matches!(v, Value::Mark)).ok_or_else(|| m.err("MARK expected"))?;
            let items = stack.split_off(at + 1);
            stack.pop();
            Ok(items)
        };
        // The depth of a container holding values of depths `inner`.
        let nest = |m: &Self, inner: u32| -> Result<u32, LoadError> {
            if inner >= MAX_DEPTH {
                return Err(m.err(format!("containers nested more than {MAX_DEPTH} deep")));
            }
            Ok(inner + 1)
        };
        let deepest = |items: &[(Value, u32)]| items.iter().map(|(_, d)| *d).max().unwrap_or(0);
        let unzip = |items: Vec<(Value, u32)>| items.into_iter().map(|(v, _)| v).collect::<Vec<_>>();
        loop {
            let op = take!(1)[0];
            match op {
                0x80 => {
                    take!(1); // PROTO
                }
                0x95 => {
                    take!(8); // FRAME
                }
                b'.' => {
                    // STOP. Anything after it would be a second reading of the same file.
                    if pos != code.len() {
                        return Err(self.err(format!("{} bytes after the pickle's STOP", code.len() - pos)));
                    }
                    return stack.pop().map(|(v, _)| v).ok_or_else(|| self.err("empty pickle"));
                }
                b'(' => stack.push((Value::Mark, 0)),
                b'}' => stack.push((Value::Dict(Vec::new()), 1)),
                b']' => stack.push((Value::List(Vec::new()), 1)),
                b')' => stack.push((Value::Tuple(Vec::new()), 1)),
                b'N' => stack.push((Value::None, 0)),
                0x88 => stack.push((Value::Bool(true), 0)),
                0x89 => stack.push((Value::Bool(false), 0)),
                b'J' => stack.push((Value::Int(i32::from_le_bytes(take!(4).try_into().unwrap()) as i64), 0)),
                b'K' => stack.push((Value::Int(take!(1)[0] as i64), 0)),
                b'M' => stack.push((Value::Int(u16::from_le_bytes(take!(2).try_into().unwrap()) as i64), 0)),
                0x8a => {
                    // LONG1
                    let n = take!(1)[0] as usize;
                    let b = take!(n);
                    if n > 8 {
                        return Err(self.err("integer wider than 64 bits"));
                    }
                    let mut buf = if b.last().is_some_and(|x| x & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
                    buf[..n].copy_from_slice(b);
                    stack.push((Value::Int(i64::from_le_bytes(buf)), 0));
                }
                b'G' => stack.push((Value::Float(f64::from_be_bytes(take!(8).try_into().unwrap())), 0)),
                b'X' => {
                    let n = u32::from_le_bytes(take!(4).try_into().unwrap()) as usize;
                    stack.push((Value::Str(String::from_utf8_lossy(take!(n)).into_owned()), 0));
                }
                0x8c => {
                    let n = take!(1)[0] as usize;
                    stack.push((Value::Str(String::from_utf8_lossy(take!(n)).into_owned()), 0));
                }
                0x8d => {
                    let n = usize::try_from(u64::from_le_bytes(take!(8).try_into().unwrap())).unwrap_or(usize::MAX);
                    stack.push((Value::Str(String::from_utf8_lossy(take!(n)).into_owned()), 0));
                }
                b'B' => {
                    let n = u32::from_le_bytes(take!(4).try_into().unwrap()) as usize;
                    stack.push((Value::Bytes(take!(n).to_vec()), 0));
                }
                b'C' => {
                    let n = take!(1)[0] as usize;
                    stack.push((Value::Bytes(take!(n).to_vec()), 0));
                }
                b'q' | b'r' | 0x94 => {
                    // BINPUT, LONG_BINPUT, MEMOIZE: a copy of the top, paid for.
                    let k = match op {
                        b'q' => take!(1)[0] as u32,
                        b'r' => u32::from_le_bytes(take!(4).try_into().unwrap()),
                        _ => memo.len() as u32,
                    };
                    let top = stack.last().ok_or_else(|| self.err("memo put on an empty stack"))?;
                    let copy = self.copy(top)?;
                    memo.insert(k, copy);
                }
                b'h' | b'j' => {
                    // BINGET, LONG_BINGET
                    let k = if op == b'h' { take!(1)[0] as u32 } else { u32::from_le_bytes(take!(4).try_into().unwrap()) };
                    let v = memo.get(&k).ok_or_else(|| self.err(format!("memo {k} unset")))?;
                    let copy = self.copy(v)?;
                    stack.push(copy);
                }
                b't' => {
                    let items = pop_mark(&mut stack, self)?;
                    let d = nest(self, deepest(&items))?;
                    stack.push((Value::Tuple(unzip(items)), d));
                }
                0x85..=0x87 => {
                    // TUPLE1, TUPLE2, TUPLE3
                    let n = (op - 0x84) as usize;
                    let at = stack.len().checked_sub(n).ok_or_else(|| self.err("the pickle pops an empty stack"))?;
                    let items = stack.split_off(at);
                    let d = nest(self, deepest(&items))?;
                    stack.push((Value::Tuple(unzip(items)), d));
                }
                b'l' => {
                    let items = pop_mark(&mut stack, self)?;
                    let d = nest(self, deepest(&items))?;
                    stack.push((Value::List(unzip(items)), d));
                }
                b'd' => {
                    let items = pop_mark(&mut stack, self)?;
                    let d = nest(self, deepest(&items))?;
                    stack.push((Value::Dict(pairs(unzip(items))), d));
                }
                b'a' | b'e' => {
                    // APPEND, APPENDS
                    let items = if op == b'a' { vec![pop!()] } else { pop_mark(&mut stack, self)? };
                    let inner = nest(self, deepest(&items))?;
                    match stack.last_mut() {
                        Some((Value::List(l), d)) => {
                            *d = (*d).max(inner);
                            l.extend(unzip(items));
                        }
                        _ => return Err(self.err("APPEND to a non-list")),
                    }
                }
                b's' | b'u' => {
                    // SETITEM, SETITEMS
                    let items = if op == b's' {
                        let v = pop!();
                        let k = pop!();
                        vec![k, v]
                    } else {
                        pop_mark(&mut stack, self)?
                    };
                    let inner = nest(self, deepest(&items))?;
                    let target = stack.last_mut().map(|(v, d)| {
                        *d = (*d).max(inner);
                        v
                    });
                    set_items(target, pairs(unzip(items))).map_err(|e| self.err(e))?;
                }
                b'c' => {
                    let module = read_line(code, &mut pos).ok_or_else(|| self.err("truncated GLOBAL"))?;
                    let name = read_line(code, &mut pos).ok_or_else(|| self.err("truncated GLOBAL"))?;
                    stack.push((self.global(&module, &name)?, 0));
                }
                0x93 => {
                    let (name, _) = pop!();
                    let (module, _) = pop!();
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => stack.push((self.global(&m, &n)?, 0)),
                        _ => return Err(self.err("STACK_GLOBAL without names")),
                    }
                }
                b'Q' => {
                    // BINPERSID: ('storage', storage type, key, location, numel)
                    let (pid, _) = pop!();
                    let Value::Tuple(items) = pid else { return Err(self.err("persistent id is not a tuple")) };
                    match items.as_slice() {
                        [Value::Str(kind), Value::Global(Global::Storage(dtype)), Value::Str(key), _, numel] if kind == "storage" => {
                            let numel = numel.as_int().and_then(|n| usize::try_from(n).ok());
                            // Checked, so that its size in bytes never wraps (at 32 bits in wasm).
                            let Some(numel) = numel.filter(|n| n.checked_mul(dtype.size()).is_some()) else {
                                return Err(self.err(format!("storage {key}: its element count is not a size")));
                            };
                            stack.push((Value::Storage { dtype: *dtype, key: key.clone(), numel }, 0))
                        }
                        _ => return Err(self.err("persistent id is not a torch storage")),
                    }
                }
                b'R' | 0x81 => {
                    // REDUCE / NEWOBJ: call an allowlisted global with a tuple of arguments.
                    let (args, _) = pop!();
                    let (callable, _) = pop!();
                    let Value::Tuple(args) = args else { return Err(self.err("call arguments are not a tuple")) };
                    let Value::Global(g) = callable else { return Err(self.err("call of a value that is not an allowed global")) };
                    let value = self.call(g, args)?;
                    let d = if matches!(value, Value::Tensor(_)) { 0 } else { 1 };
                    stack.push((value, d));
                }
                b'b' => {
                    // BUILD: set a record's state; tensors' and dicts' extra state is dropped.
                    let (state, depth) = pop!();
                    let inner = nest(self, depth)?;
                    if let Some((Value::Record { attrs, .. }, d)) = stack.last_mut() {
                        if let Value::Dict(items) = state {
                            *d = (*d).max(inner);
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

    fn call(&mut self, g: Global, args: Vec<Value>) -> Result<Value, LoadError> {
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
                let &Value::Storage { dtype, ref key, numel: n_elements } = storage else { return Err(self.err("tensor without a storage")) };
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
                // Checked, so that no product or sum wraps (at 32 bits in wasm, 64 natively), and a
                // view never reads more elements than its storage holds (a stride-0 view could
                // otherwise ask for any number of copies of one element).
                let numel = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
                let last = shape.iter().zip(&strides).try_fold(offset, |at, (&d, &s)| at.checked_add(d.saturating_sub(1).checked_mul(s)?));
                let (Some(numel), Some(last)) = (numel, last) else {
                    return Err(self.err(format!("storage {key}: a tensor of shape {shape:?} and strides {strides:?} overflows")));
                };
                if numel > 0 && last >= n_elements {
                    return Err(self.err(format!(
                        "storage {key} holds {n_elements} elements but a tensor of shape {shape:?} reads element {last}"
                    )));
                }
                if numel > n_elements {
                    return Err(self.err(format!("storage {key} holds {n_elements} elements but a tensor of shape {shape:?} has {numel}")));
                }
                Ok(Value::Tensor(Rc::new(TensorRef { storage: key.clone(), dtype, storage_numel: n_elements, offset, shape, strides })))
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

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_node_is_as_large_as_the_memo_budget_says() {
        assert_eq!(std::mem::size_of::<Value>(), 48);
    }

    #[test]
    fn refuses_globals_outside_the_allowlist_by_name() {
        // The classic exploit: os.system('echo pwned') through REDUCE.
        let evil = b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
        let err = parse(evil, "evil.pt").unwrap_err().to_string();
        assert_eq!(
            err,
            "evil.pt: refused to load `os.system`: a weights file may only rebuild tensors (a pickle naming anything else could run code)"
        );
        let eval = b"\x80\x02cbuiltins\neval\nq\x00.";
        assert!(parse(eval, "e.pt").unwrap_err().to_string().contains("`builtins.eval`"));
    }

    #[test]
    fn rebuilds_a_strided_tensor_in_an_ordered_dict() {
        // OrderedDict({'w': _rebuild_tensor_v2(storage 0 (FloatStorage, 6), 0, (2, 3), (1, 2), False, OrderedDict())})
        // i.e. the transpose of a 3x2 [[0,1],[2,3],[4,5]].
        let pickle = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wq\x02ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x06tq\x08QK\x00K\x02K\x03\x86q\tK\x01K\x02\x86q\n\x89h\x00)Rq\x0btq\x0cRq\rs.";
        let refs = parse(pickle, "ok.pt").unwrap().tensor_refs();
        let [(name, t)] = refs.as_slice() else { panic!("one tensor") };
        assert_eq!((name.as_str(), t.storage.as_str(), t.storage_bytes()), ("w", "0", 24));
        let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let t = t.read(&data);
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.data, vec![0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
    }

    #[test]
    fn nesting_has_a_limit() {
        // tests/common/hostile.rs has lists appended into lists; here tuples of one, and a mark per level.
        let mut tuples = b"\x80\x02N".to_vec();
        tuples.extend(std::iter::repeat_n(0x85u8, 100_000));
        tuples.push(b'.');
        assert!(parse(&tuples, "t.pt").unwrap_err().to_string().ends_with("deep"));
        let mut marks = b"\x80\x02".to_vec();
        marks.extend(std::iter::repeat_n(b'(', 100_000));
        marks.extend(std::iter::repeat_n(b'l', 100_000));
        marks.push(b'.');
        assert!(parse(&marks, "m.pt").unwrap_err().to_string().ends_with("deep"));
    }

    #[test]
    fn a_truncated_pickle_is_a_format_error() {
        let err = parse(b"\x80\x02}q\x00X\x05\x00", "t.pt").unwrap_err().to_string();
        assert_eq!(err, "t.pt is not a readable torch .pt file: the pickle is truncated");
    }
}
