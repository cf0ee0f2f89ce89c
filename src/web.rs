//! The wasm boundary: one exported object over a [`Session`], arguments in with serde, typed
//! results out as plain objects. Nothing else in the crate knows about JavaScript; nothing here
//! decides anything a CLI verb also needs.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::analysis::atlas::format::Atlas;
use crate::analysis::circuit::CircuitOptions;
use crate::analysis::probe::ProbeInput;
use crate::intervene::Edit;
use crate::session::{AtlasRequest, GenerateRequest, Session};
use crate::train::TrainOptions;
use crate::weights::detect::NamedFile;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// `initThreadPool(n)`: starts rayon's n Web Workers (the threads build only; call it once, before
/// `Plmscope.create`, from a cross-origin isolated page).
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

fn out<T: Serialize>(value: Result<T, impl std::fmt::Display>) -> Result<JsValue, JsError> {
    value.map_err(js_err)?.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(js_err)
}

fn arg<T: serde::de::DeserializeOwned>(what: &str, value: JsValue) -> Result<T, JsError> {
    serde_wasm_bindgen::from_value(value).map_err(|e| js_err(format!("{what}: {e}")))
}

/// `names[i]` with the bytes of `files[i]` (Uint8Arrays), as the format detector takes them.
fn named(names: &[String], files: &js_sys::Array) -> Result<Vec<(String, Vec<u8>)>, JsError> {
    if names.len() != files.length() as usize {
        return Err(js_err(format!("{} names for {} files", names.len(), files.length())));
    }
    Ok(names.iter().cloned().zip(files.iter().map(|f| js_sys::Uint8Array::new(&f).to_vec())).collect())
}

/// Which backends this build of the wasm holds.
#[wasm_bindgen(js_name = compiledBackends)]
pub fn compiled_backends() -> Vec<String> {
    crate::device::compiled_backends().into_iter().map(String::from).collect()
}

/// The page's session, on one device.
#[wasm_bindgen]
pub struct Plmscope {
    session: Session,
    #[cfg(feature = "bench")]
    bench: Option<crate::bench::Prepared>,
}

#[wasm_bindgen]
impl Plmscope {
    /// `backend` is `"webgpu"` or `"cpu"`.
    pub async fn create(backend: String) -> Result<Plmscope, JsError> {
        let device = crate::device::create(&backend).await.map_err(js_err)?;
        Ok(Plmscope {
            session: Session::new(device),
            #[cfg(feature = "bench")]
            bench: None,
        })
    }

    /// Starts a model load from the first bytes of each file (`names[i]`, `heads[i]`: up to
    /// 1 MiB, a config whole), whatever their format (`name` is how the page names the model):
    /// the index of the file to give whole, in order, to `modelStreamPush`.
    #[wasm_bindgen(js_name = modelStreamStart)]
    pub fn model_stream_start(&mut self, names: Vec<String>, heads: js_sys::Array, name: String) -> Result<usize, JsError> {
        let heads = named(&names, &heads)?;
        self.session.model_stream_start(&NamedFile::views(&heads), &name).map_err(js_err)
    }

    /// The next bytes of the streamed weights: `{received, total}` (total once a safetensors
    /// header is in; a zip does not say it).
    #[wasm_bindgen(js_name = modelStreamPush)]
    pub fn model_stream_push(&mut self, chunk: &[u8]) -> Result<JsValue, JsError> {
        out(self.session.model_stream_push(chunk))
    }

    /// The streamed model, installed.
    #[wasm_bindgen(js_name = modelStreamFinish)]
    pub fn model_stream_finish(&mut self) -> Result<JsValue, JsError> {
        out(self.session.model_stream_finish())
    }

    /// The precision of the models loaded from now on: `"auto"`, `"f32"` or `"f16"` (refused, in
    /// words, where the adapter has no `shader-f16`).
    #[wasm_bindgen(js_name = setPrecision)]
    pub fn set_precision(&mut self, choice: &str) -> Result<(), JsError> {
        self.session.set_precision(choice).map_err(js_err)
    }

    /// The adapter's `min(maxStorageBufferBindingSize, maxBufferSize)`: larger models are refused
    /// before they load, naming the limit.
    #[wasm_bindgen(js_name = setBufferLimit)]
    pub fn set_buffer_limit(&mut self, bytes: f64) {
        self.session.set_buffer_limit(bytes.clamp(0.0, usize::MAX as f64) as usize);
    }

    /// Whether this device can hold a model's weights in f16.
    #[wasm_bindgen(js_name = f16Available)]
    pub fn f16_available(&self) -> bool {
        self.session.f16_available()
    }

    /// What the next load of ESM-2 `size` ("8M", "35M", "150M", "650M") would get: `{precision,
    /// weightBytes}`, for the page to say before anything downloads.
    #[wasm_bindgen(js_name = planFor)]
    pub fn plan_for(&self, size: &str) -> Result<JsValue, JsError> {
        out(self.session.plan_for(size))
    }

    /// esm2_t6_8M with the offline demo's random weights.
    #[wasm_bindgen(js_name = loadRandomModel)]
    pub fn load_random_model(&mut self) -> Result<JsValue, JsError> {
        out(self.session.load_random_model())
    }

    #[wasm_bindgen(js_name = selfCheck)]
    pub async fn self_check(&self) -> Result<JsValue, JsError> {
        out(self.session.self_check().await)
    }

    /// The SAE of hidden state `layer` from the files given; `k` for a top-k SAE whose file name
    /// does not give it.
    #[wasm_bindgen(js_name = loadSae)]
    pub fn load_sae(&mut self, layer: usize, names: Vec<String>, files: js_sys::Array, k: Option<usize>, name: String) -> Result<JsValue, JsError> {
        let files = named(&names, &files)?;
        out(self.session.load_sae(layer, &NamedFile::views(&files), k, &name))
    }

    /// The offline demo's random SAE at `layer`.
    #[wasm_bindgen(js_name = loadRandomSae)]
    pub fn load_random_sae(&mut self, layer: usize) -> Result<JsValue, JsError> {
        out(self.session.load_random_sae(layer))
    }

    /// Runs the `record`-th sequence of a FASTA text and returns its features at `layer`.
    pub async fn run(&mut self, fasta: String, record: usize, layer: usize) -> Result<JsValue, JsError> {
        out(self.session.run(&fasta, record, layer).await)
    }

    /// Features of the shown sequence at another layer.
    #[wasm_bindgen(js_name = featuresAt)]
    pub async fn features_at(&mut self, layer: usize) -> Result<JsValue, JsError> {
        out(self.session.features_at(layer).await)
    }

    /// `edits`: `[{feature, op: "ablate" | "clamp" | "scale", value?, positions?: [1-based]}]`.
    pub async fn intervene(&self, layer: usize, edits: JsValue, downstream: Option<usize>) -> Result<JsValue, JsError> {
        let edits: Vec<Edit> = arg("edits", edits)?;
        out(self.session.intervene(layer, &edits, downstream).await)
    }

    #[wasm_bindgen(js_name = loadLabels)]
    pub fn load_labels(&mut self, text: &str, max: Option<usize>) -> Result<JsValue, JsError> {
        out(self.session.load_labels(text, max))
    }

    /// `input`: "residual" or "features".
    #[wasm_bindgen(js_name = trainProbe)]
    pub async fn train_probe(&mut self, concept: String, layer: usize, input: JsValue) -> Result<JsValue, JsError> {
        let input: ProbeInput = arg("probe input", input)?;
        out(self.session.train_probe(&concept, layer, input).await)
    }

    #[wasm_bindgen(js_name = loadProbe)]
    pub fn load_probe(&mut self, json: &str) -> Result<JsValue, JsError> {
        out(self.session.load_probe(json))
    }

    /// `options`: `{layers, topN, edgesPerFeature, batch, modelName}`.
    #[wasm_bindgen(js_name = circuitStart)]
    pub fn circuit_start(&mut self, options: JsValue, use_probe: bool) -> Result<JsValue, JsError> {
        let options: CircuitOptions = arg("circuit options", options)?;
        out(self.session.circuit_start(options, use_probe))
    }

    #[wasm_bindgen(js_name = circuitStep)]
    pub async fn circuit_step(&mut self) -> Result<JsValue, JsError> {
        out(self.session.circuit_step().await)
    }

    #[wasm_bindgen(js_name = circuitGraph)]
    pub fn circuit_graph(&self) -> Result<JsValue, JsError> {
        out(self.session.circuit_graph())
    }

    pub async fn concepts(&self, layer: usize, concepts: Vec<String>, top: usize) -> Result<JsValue, JsError> {
        out(self.session.concepts(layer, &concepts, top).await)
    }

    /// `request`: `{steers: [{layer, edits}], start?, length, rounds, maskFraction, temperature,
    /// topP, seed}`; the sample steered and unsteered from the same seed.
    #[wasm_bindgen(js_name = generatePair)]
    pub async fn generate_pair(&self, request: JsValue) -> Result<JsValue, JsError> {
        let request: GenerateRequest = arg("generation options", request)?;
        out(self.session.generate_pair(&request).await)
    }

    /// Starts training an SAE on hidden state `layer` of `fasta` (`options` as
    /// [`TrainOptions`] in camelCase); `progress(done, total)` after each sequence harvested.
    #[wasm_bindgen(js_name = trainStart)]
    pub async fn train_start(&mut self, fasta: String, trained_on: String, layer: usize, max_tokens: usize, options: JsValue, progress: js_sys::Function) -> Result<JsValue, JsError> {
        let options: TrainOptions = arg("training options", options)?;
        let records = crate::alphabet::parse_fasta(&fasta).map_err(js_err)?;
        let report = |done: usize, total: usize| {
            // The page's progress bar only: a failing callback must not stop the harvest.
            let _ = progress.call2(&JsValue::NULL, &JsValue::from(done), &JsValue::from(total));
        };
        out(self.session.train_start(&records, &trained_on, layer, max_tokens, options, report).await)
    }

    #[wasm_bindgen(js_name = trainSteps)]
    pub async fn train_steps(&mut self, n: usize) -> Result<JsValue, JsError> {
        out(self.session.train_steps(n).await)
    }

    /// Starts an atlas over `corpus` (FASTA or UniProt JSON); `request`: `{layer, description,
    /// options?, shard: [i, n]}`.
    #[wasm_bindgen(js_name = atlasStart)]
    pub fn atlas_start(&mut self, corpus: &str, request: JsValue) -> Result<JsValue, JsError> {
        let request: AtlasRequest = arg("atlas options", request)?;
        out(self.session.atlas_start(corpus, request))
    }

    #[wasm_bindgen(js_name = atlasStep)]
    pub async fn atlas_step(&mut self, n: usize) -> Result<JsValue, JsError> {
        out(self.session.atlas_step(n).await)
    }

    /// The finished atlas: `{files: {path: JSON text}, zip: bytes}`.
    #[wasm_bindgen(js_name = atlasFinish)]
    pub async fn atlas_finish(&mut self) -> Result<JsValue, JsError> {
        atlas_object(&self.session.atlas_finish().await.map_err(js_err)?)
    }

    /// An atlas zip's files, checked, as [`Self::atlas_finish`] gives them.
    #[wasm_bindgen(js_name = atlasFromZip)]
    pub fn atlas_from_zip(&self, bytes: &[u8]) -> Result<JsValue, JsError> {
        atlas_object(&Atlas::from_zip(bytes).map_err(js_err)?)
    }

    /// The seed explorer's features JSON (`name`, its text) as atlases of its SAE, one per layer:
    /// `[[layer, {files, zip}], …]`.
    #[wasm_bindgen(js_name = atlasFromExplorer)]
    pub fn atlas_from_explorer(&self, name: &str, text: &str) -> Result<JsValue, JsError> {
        let out = js_sys::Array::new();
        for (layer, atlas) in crate::analysis::atlas::explorer::read(name, text).map_err(js_err)? {
            out.push(&js_sys::Array::of2(&(layer as u32).into(), &atlas_object(&atlas)?));
        }
        Ok(out.into())
    }

    /// The SAE as trained so far as a SAELens folder: `{layer, cfg: text, weights: bytes}`.
    #[wasm_bindgen(js_name = trainedSaelens)]
    pub async fn trained_saelens(&self) -> Result<JsValue, JsError> {
        let files = self.session.trained_saelens().await.map_err(js_err)?;
        let obj = js_sys::Object::new();
        let set = |k: &str, v: JsValue| js_sys::Reflect::set(&obj, &k.into(), &v).map(|_| ()).map_err(|_| js_err("building the result"));
        set("layer", files.layer.into())?;
        set("cfg", files.cfg.into())?;
        set("weights", js_sys::Uint8Array::from(&files.weights[..]).into())?;
        Ok(obj.into())
    }
}

/// `{files: {path: JSON text}, zip: bytes}` of an atlas.
fn atlas_object(atlas: &Atlas) -> Result<JsValue, JsError> {
    let files = js_sys::Object::new();
    for (path, bytes) in atlas.files() {
        let text = String::from_utf8(bytes).map_err(js_err)?;
        js_sys::Reflect::set(&files, &path.into(), &text.into()).map_err(|_| js_err("building the result"))?;
    }
    let obj = js_sys::Object::new();
    js_sys::Reflect::set(&obj, &"files".into(), &files).map_err(|_| js_err("building the result"))?;
    let zip = js_sys::Uint8Array::from(&atlas.zip().map_err(js_err)?[..]);
    js_sys::Reflect::set(&obj, &"zip".into(), &zip).map_err(|_| js_err("building the result"))?;
    Ok(obj.into())
}

#[cfg(feature = "bench")]
impl Plmscope {
    /// The loaded model and the SAE of the layer the benchmark times ([`crate::bench::layer`]).
    fn bench_subject(&self) -> Result<(&crate::esm::EsmModel, &crate::sae::Sae), JsError> {
        let model = self.session.model().map_err(js_err)?;
        Ok((model, self.session.sae(crate::bench::layer(model.n_layers())).map_err(js_err)?))
    }
}

/// The speed benchmark (pkg-build/bench/), in the bench packages only: the same cases as
/// `plmscope bench-cases` on the random model and the demo SAE of layer 3, timed by the caller
/// around `benchRun`.
#[cfg(feature = "bench")]
#[wasm_bindgen]
impl Plmscope {
    /// Prepares `case` ("forward", "sae", "intervene", "matmul") for `batch` sequences of
    /// `residues`.
    #[wasm_bindgen(js_name = benchPrepare)]
    pub fn bench_prepare(&mut self, case: &str, batch: usize, residues: usize) -> Result<(), JsError> {
        let case: crate::bench::Case = case.parse().map_err(js_err)?;
        let (model, sae) = self.bench_subject()?;
        self.bench = Some(crate::bench::prepare(model, sae, case, batch, residues).map_err(js_err)?);
        Ok(())
    }

    /// Runs the prepared case once, results read back; returns how many numbers came back.
    #[wasm_bindgen(js_name = benchRun)]
    pub async fn bench_run(&self) -> Result<usize, JsError> {
        let (model, sae) = self.bench_subject()?;
        let prepared = self.bench.as_ref().ok_or_else(|| js_err("call benchPrepare first"))?;
        Ok(crate::bench::run(model, sae, prepared).await?.len())
    }
}
