//! Files in and out, and the session the verbs share: a model and SAEs opened from paths through
//! the one format detector.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use plmscope::alphabet::{self, Record};
use plmscope::session::Session;
use plmscope::weights::detect::{self, NamedFile, PREFIX};
use plmscope::weights::safetensors::{self, OutTensor};

pub type Error = Box<dyn std::error::Error>;

pub fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()).into())
}

pub fn read_text(path: &Path) -> Result<String, Error> {
    String::from_utf8(read(path)?).map_err(|_| format!("{} is not UTF-8 text", path.display()).into())
}

pub fn read_fasta(path: &Path) -> Result<Vec<Record>, Error> {
    Ok(alphabet::parse_fasta(&read_text(path)?).map_err(|e| format!("{}: {e}", path.display()))?)
}

pub fn write(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()).into())
}

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), Error> {
    write(path, serde_json::to_string_pretty(value)?.as_bytes())
}

pub fn write_tensors(path: &Path, tensors: Vec<(String, OutTensor)>) -> Result<(), Error> {
    write(path, &safetensors::write(tensors)?)
}

/// The files a path stands for: a folder's files, or the file itself.
fn paths(path: &Path) -> Result<Vec<PathBuf>, Error> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// The start of a file: enough for the detector to tell its part.
fn prefix(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(PREFIX as u64).read_to_end(&mut head))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(head)
}

/// The files of `path` with their starts, as the detector takes them.
struct Heads {
    paths: Vec<PathBuf>,
    names: Vec<String>,
    heads: Vec<Vec<u8>>,
}

impl Heads {
    fn of(path: &Path) -> Result<Self, Error> {
        let paths = paths(path)?;
        let names = paths.iter().map(|p| p.display().to_string()).collect();
        let heads = paths.iter().map(|p| prefix(p)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { paths, names, heads })
    }

    fn files(&self) -> Vec<NamedFile<'_>> {
        self.names.iter().zip(&self.heads).map(|(name, bytes)| NamedFile { name, bytes }).collect()
    }

    /// Files `chosen`, read whole.
    fn read(&self, chosen: Vec<usize>) -> Result<Vec<(String, Vec<u8>)>, Error> {
        chosen.into_iter().map(|i| Ok((self.names[i].clone(), read(&self.paths[i])?))).collect()
    }
}

thread_local! {
    static DEVICE: std::cell::OnceCell<Device> = const { std::cell::OnceCell::new() };
    static PRECISION: std::cell::OnceCell<String> = const { std::cell::OnceCell::new() };
}

/// Chooses the device every verb runs on (`--backend`: cpu, wgpu, cuda) and the precision of the
/// models it opens (`--precision`), once, before any verb; a precision the device cannot hold is
/// refused here, before any model is read.
pub fn set_backend(name: &str, precision: &str) -> Result<(), Error> {
    let device = pollster::block_on(plmscope::device::create(name))?;
    Session::new(device.clone()).set_precision(precision)?;
    PRECISION.with(|p| p.set(precision.to_string())).map_err(|_| "the precision is chosen once")?;
    DEVICE.with(|d| d.set(device)).map_err(|_| "the backend is chosen once".into())
}

/// The precision `--precision` gives a model of `config` on the chosen device.
#[cfg(feature = "bench")]
pub fn precision_for(config: &plmscope::esm::EsmConfig) -> plmscope::device::Precision {
    let mut session = Session::new(device());
    if let Some(precision) = PRECISION.with(|p| p.get().cloned()) {
        session.set_precision(&precision).expect("checked by set_backend");
    }
    session.precision_for(config)
}

/// The device `--backend` chose (the CPU where none was).
pub fn device() -> Device {
    DEVICE.with(|d| d.get_or_init(Device::flex).clone())
}

/// A session on the chosen device with the model at `path` (a hub folder, or a fair-esm `.pt`),
/// its weights streamed from the disk a chunk at a time as the page streams its downloads.
pub fn open(model: &Path) -> Result<Session, Error> {
    use std::io::Read;
    let mut session = Session::new(device());
    if let Some(precision) = PRECISION.with(|p| p.get().cloned()) {
        session.set_precision(&precision)?;
    }
    let heads = Heads::of(model)?;
    let name = model.display().to_string();
    let weights = session.model_stream_start(&heads.files(), &name)?;
    let path = &heads.paths[weights];
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    let mut chunk = vec![0u8; 8 << 20];
    loop {
        let n = file.read(&mut chunk).map_err(cannot)?;
        if n == 0 {
            break;
        }
        session.model_stream_push(&chunk[..n])?;
    }
    session.model_stream_finish()?;
    Ok(session)
}

/// Installs the SAE at `path` (a file, or a SAELens folder) at `layer`.
pub fn add_sae(session: &mut Session, layer: usize, path: &Path, k: Option<usize>) -> Result<(), Error> {
    let heads = Heads::of(path)?;
    let files = heads.read(detect::sae_files(&heads.files())?.indices())?;
    session.load_sae(layer, &NamedFile::views(&files), k, &path.display().to_string())?;
    Ok(())
}

/// A model and the SAE that reads one of its layers: the arguments of every verb that needs both.
#[derive(clap::Args)]
pub struct Weights {
    /// A folder with config.json + model.safetensors, or a fair-esm .pt file.
    #[arg(long)]
    pub model: PathBuf,
    /// An InterPLM or InterProt .pt, an InterProt .safetensors, or a SAELens folder.
    #[arg(long)]
    pub sae: PathBuf,
    /// The hidden state the SAE reads (1..=n_layers, transformers numbering).
    #[arg(long)]
    pub layer: usize,
    /// k of a top-k SAE whose file does not say it.
    #[arg(long)]
    pub k: Option<usize>,
}

impl Weights {
    /// A session with the model and the SAE at its layer.
    pub fn open(&self) -> Result<Session, Error> {
        let mut session = open(&self.model)?;
        add_sae(&mut session, self.layer, &self.sae, self.k)?;
        Ok(session)
    }
}

/// `LAYER=PATH`.
pub fn parse_layer_path(s: &str) -> Result<(usize, PathBuf), String> {
    let (l, p) = s.split_once('=').ok_or_else(|| format!("\"{s}\" is not LAYER=PATH"))?;
    Ok((l.parse().map_err(|_| format!("\"{l}\" is not a layer number"))?, PathBuf::from(p)))
}

/// Annotated proteins from a file (FASTA, UniProt JSON or the explorer's features JSON) into
/// the session; prints what was skipped.
pub fn load_labels(session: &mut Session, path: &Path) -> Result<(), Error> {
    let info = session.load_labels(&read_text(path)?, None).map_err(|e| format!("{}: {e}", path.display()))?;
    for s in &info.skipped {
        eprintln!("skipped {s}");
    }
    Ok(())
}

/// Reads a tensor back on the CPU.
pub fn host<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, plmscope::device::DeviceError> {
    pollster::block_on(plmscope::device::read_f32(t))
}
