//! Analyses that loop over the forward pass and the interventions: behavior probes
//! ([`probe`]), circuits by ablation ([`circuit`]) and feature–concept association
//! ([`concepts`]), on annotated proteins ([`labels`]); the feature atlas ([`atlas`]): what each
//! feature does over a corpus.

pub mod atlas;
pub mod circuit;
pub mod generate;
pub mod concepts;
pub mod labels;
pub mod probe;

use crate::alphabet::{self, InputError};
use crate::device::DeviceError;
use crate::features::UseError;

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("protein {accession}: {source}")]
    Sequence { accession: String, source: InputError },
    #[error(transparent)]
    Use(#[from] UseError),
    #[error("no SAE is loaded for layer {layer}")]
    NoSae { layer: usize },
    #[error("concept \"{concept}\" needs residues inside and outside it to train on: {positives} of {residues} training residues are inside")]
    OneClass { concept: String, residues: usize, positives: usize },
    #[error("not a probe: {0}")]
    Probe(String),
    #[error("circuit: {0}")]
    Circuit(String),
    #[error("generation: {0}")]
    Generate(String),
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// `<cls>` residues `<eos>` of an annotated protein.
pub(crate) fn tokens(p: &labels::Annotated) -> Result<Vec<u32>, AnalysisError> {
    let records = alphabet::parse_fasta(&p.sequence).map_err(|source| AnalysisError::Sequence { accession: p.accession.clone(), source })?;
    Ok(records[0].tokens())
}
