//! What a session does over many proteins: annotated proteins, probes, circuits, concept
//! association, the feature atlas, steered generation and SAE training. The long ones are steppers: the caller asks
//! for the next step (or chunk of steps), gets the progress in every answer, and cancels by not
//! asking again.

use serde::{Deserialize, Serialize};

use super::{Result, Session, SessionError};
use crate::alphabet::{self, Record};
use crate::analysis::atlas::{self, concept::Span, effect, format::{self, Atlas}, AtlasOptions, Identity, Partial, Subject};
use crate::analysis::circuit::{CircuitOptions, CircuitRun, Graph, Progress};
use crate::analysis::concepts::{self, ConceptTable};
use crate::analysis::generate::{self, GenerateOptions, Generated, Steer};
use crate::analysis::labels::{self, Labelled};
use crate::analysis::probe::{self, Probe, ProbeInput};
use crate::intervene::{Edit, Op};
use crate::train::{harvest::harvest, StepMetrics, TrainOptions, Trainer};
use crate::weights::sae::{self as sae_files, SaeLensOrigin};

#[derive(Default)]
pub(super) struct Jobs {
    circuit: Option<CircuitJob>,
    atlas: Option<AtlasJob>,
    training: Option<TrainingJob>,
}

struct AtlasJob {
    partial: Partial,
    /// The shard's proteins, and how many are done.
    proteins: Vec<AtlasProtein>,
    done: usize,
}

struct AtlasProtein {
    /// Its number in the corpus.
    index: u64,
    tokens: Vec<u32>,
    id: String,
    sequence: String,
    /// Its segments of the atlas's concepts.
    spans: Vec<Span>,
}

/// How far an atlas build is.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AtlasProgress {
    pub done: usize,
    /// Proteins in this shard.
    pub total: usize,
    /// Proteins of the corpus left out, with why.
    pub skipped: Vec<String>,
}

/// Where an atlas build starts: the corpus (FASTA or UniProt JSON), what it is, and which shard.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AtlasRequest {
    pub layer: usize,
    /// What the corpus is, in words (its file's name, the UniProt query): the atlas's name for it.
    pub description: String,
    #[serde(default)]
    pub options: AtlasOptions,
    /// (index, count); `(0, 1)` for the whole corpus.
    pub shard: (usize, usize),
}

struct CircuitJob {
    run: CircuitRun,
    use_probe: bool,
}

struct TrainingJob {
    layer: usize,
    trainer: Trainer,
    /// What the activations came from, as the caller named it.
    trained_on: String,
    last: Option<StepMetrics>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LabelsInfo {
    pub proteins: usize,
    pub concepts: Vec<(String, usize)>,
    pub skipped: Vec<String>,
}

/// One generated sequence: `steers` by layer, from `start` (FASTA or a sequence, `<mask>`
/// allowed) or else `length` masked residues.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateRequest {
    #[serde(default)]
    pub steers: Vec<Steer>,
    #[serde(default)]
    pub start: Option<String>,
    pub length: usize,
    pub rounds: usize,
    pub mask_fraction: f32,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
}

/// A sample generated twice from the same seed: steered, and unsteered while watching the same
/// features (scale 1 leaves them as they are).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratedPair {
    pub seed: u64,
    pub steered: Generated,
    pub baseline: Generated,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainingInfo {
    pub layer: usize,
    pub tokens: usize,
    pub sequences: usize,
    pub steps: usize,
}

/// A trained SAE as a SAELens folder: `cfg.json` text and `sae_weights.safetensors` bytes.
pub struct SaeLensFiles {
    pub layer: usize,
    pub cfg: String,
    pub weights: Vec<u8>,
}

impl Session {
    /// Annotated proteins (UniProt REST JSON, the explorer's features JSON, or FASTA without
    /// annotations) for probes, circuits and concepts, replacing those held; `max` keeps the
    /// first ones only.
    pub fn load_labels(&mut self, text: &str, max: Option<usize>) -> Result<LabelsInfo> {
        let Labelled { mut proteins, skipped } = labels::read_proteins(text)?;
        proteins.truncate(max.unwrap_or(usize::MAX));
        let info = LabelsInfo { proteins: proteins.len(), concepts: labels::concepts(&proteins), skipped };
        self.labels = proteins;
        Ok(info)
    }

    /// Trains a probe for `concept` at `layer` on the held proteins and keeps it for circuits.
    pub async fn train_probe(&mut self, concept: &str, layer: usize, input: ProbeInput) -> Result<Probe> {
        let sae = match input {
            ProbeInput::Features => Some(self.sae(layer)?),
            ProbeInput::Residual => None,
        };
        let p = probe::train(self.model()?, sae, &self.labels, concept, layer, input, probe::TrainOptions::default()).await?;
        self.probe = Some(p.clone());
        Ok(p)
    }

    /// Keeps a saved probe (its JSON text).
    pub fn load_probe(&mut self, json: &str) -> Result<Probe> {
        let p = Probe::from_json(json)?;
        self.probe = Some(p.clone());
        Ok(p)
    }

    /// Starts a circuit over the held proteins; with `use_probe`, the kept probe adds
    /// feature → behavior edges. [`Session::circuit_step`] advances it.
    pub fn circuit_start(&mut self, options: CircuitOptions, use_probe: bool) -> Result<Progress> {
        let probe = if use_probe { Some(self.probe.as_ref().ok_or(SessionError::NoProbe)?) } else { None };
        let run = CircuitRun::new(self.model()?, &self.saes, probe, &self.labels, options)?;
        let progress = run.progress();
        self.jobs.circuit = Some(CircuitJob { run, use_probe });
        Ok(progress)
    }

    /// Runs the circuit's next step (none once it has finished).
    pub async fn circuit_step(&mut self) -> Result<Progress> {
        let model = &self.model.as_ref().ok_or(SessionError::NoModel)?.model;
        let job = self.jobs.circuit.as_mut().ok_or(SessionError::NoCircuit)?;
        if job.run.finished() {
            return Ok(job.run.progress());
        }
        let probe = if job.use_probe { self.probe.as_ref() } else { None };
        Ok(job.run.step(model, &self.saes, probe).await?)
    }

    /// The circuit in the seed explorer's graph schema.
    pub fn circuit_graph(&self) -> Result<Graph> {
        let job = self.jobs.circuit.as_ref().ok_or(SessionError::NoCircuit)?;
        let probe = if job.use_probe { self.probe.as_ref() } else { None };
        Ok(job.run.graph(&self.saes, probe))
    }

    /// Each feature of the SAE at `layer` against `concepts` of the held proteins (every concept
    /// they have when empty), `top` per concept.
    pub async fn concepts(&self, layer: usize, concepts: &[String], top: usize) -> Result<ConceptTable> {
        let all: Vec<String>;
        let concepts = if concepts.is_empty() {
            all = labels::concepts(&self.labels).into_iter().map(|(c, _)| c).collect();
            &all
        } else {
            concepts
        };
        Ok(concepts::associate(self.model()?, self.sae(layer)?, layer, &self.labels, concepts, top).await?)
    }

    /// One sequence generated with the request's steers and seed.
    pub async fn generate(&self, request: &GenerateRequest) -> Result<Generated> {
        self.generate_with(request, &request.steers).await
    }

    /// The request's sample steered and unsteered (same seed), the unsteered run watching the
    /// steered features.
    pub async fn generate_pair(&self, request: &GenerateRequest) -> Result<GeneratedPair> {
        let watch: Vec<Steer> = request
            .steers
            .iter()
            .map(|s| Steer { layer: s.layer, edits: s.edits.iter().map(|e| Edit { feature: e.feature, op: Op::Scale(1.0), positions: None }).collect() })
            .collect();
        let steered = self.generate_with(request, &request.steers).await?;
        let baseline = self.generate_with(request, &watch).await?;
        Ok(GeneratedPair { seed: request.seed, steered, baseline })
    }

    async fn generate_with(&self, r: &GenerateRequest, steers: &[Steer]) -> Result<Generated> {
        let start = match r.start.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            Some(text) => alphabet::parse_fasta(text)
                .map_err(|e| SessionError::Request { what: "start sequence", detail: e.to_string() })?
                .remove(0)
                .residues,
            None => vec![alphabet::MASK; r.length],
        };
        let options = GenerateOptions { rounds: r.rounds, mask_fraction: r.mask_fraction, temperature: r.temperature, top_p: r.top_p, seed: r.seed };
        Ok(generate::generate(self.model()?, &self.saes, &generate::by_layer(steers), &start, options).await?)
    }

    /// Harvests hidden state `layer` of every residue of `records` (at most `max_tokens`) and
    /// starts training an SAE on it, replacing any run before. `progress(done, total)` after each
    /// sequence harvested; `trained_on` names the data in the SAE's cfg.json.
    pub async fn train_start(
        &mut self,
        records: &[Record],
        trained_on: &str,
        layer: usize,
        max_tokens: usize,
        options: TrainOptions,
        progress: impl FnMut(usize, usize),
    ) -> Result<TrainingInfo> {
        let data = harvest(self.model()?, records, layer, max_tokens, progress)?;
        self.train_on(data, trained_on, layer, records.len(), options).await
    }

    /// Hidden state `layer` of each of `records`' residues (`[residues, d_model]` each, without
    /// `<cls>` and `<eos>`): what training reads, harvested apart, e.g. one shard of a corpus a job.
    pub async fn harvest(&self, records: &[Record], layer: usize) -> Result<Vec<(Vec<f32>, [usize; 2])>> {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let h = harvest(self.model()?, std::slice::from_ref(r), layer, usize::MAX, |_, _| {})?;
            let dims = h.dims();
            out.push((crate::device::read_f32(h).await?, dims));
        }
        Ok(out)
    }

    /// Starts training an SAE on hidden states of `layer` harvested before (`[tokens, d_model]`,
    /// from `sequences` sequences), e.g. by `plmscope harvest` on the shards of a corpus.
    pub async fn train_on(&mut self, data: burn::prelude::Tensor<2>, trained_on: &str, layer: usize, sequences: usize, options: TrainOptions) -> Result<TrainingInfo> {
        crate::features::check_layer(self.model()?, layer).map_err(crate::analysis::AnalysisError::from)?;
        let [tokens, d] = data.dims();
        if d != self.model()?.d_model() {
            return Err(SessionError::Request { what: "training", detail: format!("hidden states {d} wide for a model of d_model {}", self.model()?.d_model()) });
        }
        // Only now that the new data is good: the previous run's data and Adam state are freed
        // before the new run allocates its own, not both held on the device at once.
        self.jobs.training = None;
        let trainer = Trainer::new(data, options).await?;
        self.jobs.training = Some(TrainingJob { layer, trainer, trained_on: trained_on.to_string(), last: None });
        Ok(TrainingInfo { layer, tokens, sequences, steps: options.steps })
    }

    /// Runs up to `n` more steps of the training (none after the last); returns their metrics.
    pub async fn train_steps(&mut self, n: usize) -> Result<Vec<StepMetrics>> {
        let job = self.jobs.training.as_mut().ok_or(SessionError::NoTraining)?;
        let mut out = Vec::new();
        while out.len() < n && job.trainer.steps_done() < job.trainer.options().steps {
            let m = job.trainer.step().await?;
            job.last = Some(m);
            out.push(m);
        }
        Ok(out)
    }

    /// The SAE as trained so far, as a SAELens folder. Its cfg.json's `plmscope` block says what
    /// it was trained on, with which options, how far, and the last step's metrics.
    pub async fn trained_saelens(&self) -> Result<SaeLensFiles> {
        let job = self.jobs.training.as_ref().ok_or(SessionError::NoTraining)?;
        let origin = SaeLensOrigin {
            model_name: self.model_info()?.name,
            hook_layer: job.layer,
            plmscope: serde_json::json!({
                "trained_on": job.trained_on,
                "options": job.trainer.options(),
                "steps_done": job.trainer.steps_done(),
                "last_step": job.last,
            }),
        };
        let (cfg, weights) = sae_files::to_saelens(&job.trainer.sae(), &origin).await?;
        Ok(SaeLensFiles { layer: job.layer, cfg, weights })
    }

    /// Starts an atlas of the SAE at `request.layer` over the proteins of `corpus` (FASTA,
    /// UniProt JSON or the explorer's features JSON) in shard `request.shard`, replacing any
    /// build before. [`Session::atlas_step`] advances it.
    pub fn atlas_start(&mut self, corpus: &str, request: AtlasRequest) -> Result<AtlasProgress> {
        let (index, count) = request.shard;
        if count == 0 || index >= count {
            return Err(SessionError::Request { what: "atlas", detail: format!("shard {index}/{count}: a shard is i/n with i < n") });
        }
        request.options.check()?;
        let sae = self.sae(request.layer)?;
        let (model, sae_info) = (self.model_info()?, self.sae_info(request.layer)?);
        let Labelled { proteins, skipped } = labels::read_proteins(corpus)?;
        // Chosen over the whole corpus, so that every shard scores the same concepts.
        let concepts: Vec<String> = labels::concepts(&proteins).into_iter().take(request.options.concepts).map(|c| c.0).collect();
        let subject = Subject {
            model: Identity { name: model.name.clone(), sha256: model.sha256.clone() },
            sae: Identity { name: sae_info.name.clone(), sha256: sae_info.sha256.clone() },
            layer: request.layer,
            d_model: model.d_model,
            d_sae: sae.d_sae,
            corpus: Identity::of(&request.description, &[corpus.as_bytes()]),
            corpus_proteins: proteins.len() as u64,
            concepts,
        };
        let concept_index: std::collections::BTreeMap<&str, u32> = subject.concepts.iter().enumerate().map(|(i, c)| (c.as_str(), i as u32)).collect();
        let mut mine = Vec::new();
        for (i, p) in proteins.into_iter().enumerate() {
            if atlas::in_shard(i as u64, request.shard) {
                // Its id is the first word of its header (a FASTA header's description is not).
                let id = p.accession.split_whitespace().next().unwrap_or_default().to_string();
                let spans = p
                    .segments
                    .iter()
                    .filter_map(|s| Some(Span { concept: *concept_index.get(s.concept.as_str())?, start: s.start as u32 - 1, end: s.end as u32 }))
                    .collect();
                mine.push(AtlasProtein { index: i as u64, tokens: crate::analysis::tokens(&p)?, id, sequence: p.sequence, spans });
            }
        }
        drop(concept_index);
        let progress = AtlasProgress { done: 0, total: mine.len(), skipped };
        self.jobs.atlas = Some(AtlasJob { partial: Partial::new(subject, request.options, request.shard), proteins: mine, done: 0 });
        Ok(progress)
    }

    /// Adds up to `n` more proteins to the atlas being built.
    pub async fn atlas_step(&mut self, n: usize) -> Result<AtlasProgress> {
        let job = self.jobs.atlas.as_mut().ok_or(SessionError::NoAtlas)?;
        let (model, sae) = (&self.model.as_ref().ok_or(SessionError::NoModel)?.model, self.saes.get(job.partial.subject.layer).ok_or(SessionError::NoSae(job.partial.subject.layer))?);
        let end = (job.done + n).min(job.proteins.len());
        for p in &job.proteins[job.done..end] {
            let seen = atlas::observe(model, sae, job.partial.subject.layer, &p.tokens).await?;
            job.partial.add(p.index, &p.id, &p.sequence, &p.spans, &seen);
        }
        job.done = end;
        Ok(AtlasProgress { done: job.done, total: job.proteins.len(), skipped: Vec::new() })
    }

    /// The atlas built so far over its shard, as a partial to merge with the other shards'.
    pub fn atlas_partial(&mut self) -> Result<Partial> {
        let job = self.jobs.atlas.as_mut().ok_or(SessionError::NoAtlas)?;
        job.partial.prune();
        Ok(job.partial.clone())
    }

    /// The finished atlas of a build over the whole corpus.
    pub async fn atlas_finish(&mut self) -> Result<Atlas> {
        let partial = self.atlas_partial()?;
        self.atlas_merge(vec![partial]).await
    }

    /// The atlas of `partials` (every shard of one corpus, built on this session's model and
    /// SAE), with each feature's direct effect.
    pub async fn atlas_merge(&self, partials: Vec<Partial>) -> Result<Atlas> {
        let mut parts = partials.into_iter();
        let mut all = parts.next().ok_or_else(|| SessionError::Request { what: "atlas", detail: "no partial atlas to merge".into() })?;
        for p in parts {
            all.merge(p)?;
        }
        let layer = all.subject.layer;
        let (model, sae, info) = (self.model()?, self.sae(layer)?, self.sae_info(layer)?);
        let model_sha = self.model_info()?.sha256;
        if all.subject.model.sha256 != model_sha || all.subject.sae.sha256 != info.sha256 || all.subject.d_model != model.d_model() || all.subject.d_sae != sae.d_sae {
            return Err(SessionError::Request { what: "atlas", detail: format!("the partials were built with {} and {} (by content); load those to merge them", all.subject.model.name, all.subject.sae.name) });
        }
        let mean: Vec<f32> = all.residual_sum.iter().map(|&s| (s as f64 / 2f64.powi(atlas::FIXED_BITS) / all.residues.max(1) as f64) as f32).collect();
        let maxima: Vec<f32> = all.features.iter().map(|f| f.max).collect();
        let effects = effect::direct_effects(model, sae, &mean, &maxima).await?;
        Ok(format::finish(all, effects)?)
    }
}
