//! The ESM alphabet (33 tokens), the FASTA reader and the errors a visitor's input can raise.
//!
//! Input becomes `<cls>` + one token per residue + `<eos>`, as `EsmTokenizer` does. Lower-case
//! letters are read as upper-case; `<mask>` (and the other bracketed tokens) are one token; a `*`
//! that ends a record (a stop codon) is dropped; anything else outside the alphabet is an error
//! that names the record, the residue position and the line and column.

use std::fmt;

/// The ESM-2 vocabulary in index order.
pub const VOCAB: [&str; 33] = [
    "<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K",
    "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>",
    "<mask>",
];
pub const CLS: u32 = 0;
pub const PAD: u32 = 1;
pub const EOS: u32 = 2;
pub const MASK: u32 = 32;
/// The longest sequence ESM-2 takes: 1,024 positions less `<cls>` and `<eos>`.
pub const MAX_RESIDUES: usize = 1022;

/// One FASTA record, validated and tokenised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The header without its `>` (empty for a bare pasted sequence).
    pub header: String,
    /// One token id per residue, without `<cls>`/`<eos>`.
    pub residues: Vec<u32>,
}

/// `<cls>` + residues + `<eos>`: what the model reads. `[residues + 2]`
pub fn with_ends(residues: impl IntoIterator<Item = u32>) -> Vec<u32> {
    std::iter::once(CLS).chain(residues).chain(std::iter::once(EOS)).collect()
}

/// The positions of the residues among `n_tokens` tokens: all but `<cls>` and `<eos>`.
pub fn residue_positions(n_tokens: usize) -> std::ops::Range<usize> {
    1..n_tokens - 1
}

impl Record {
    /// `<cls>` + residues + `<eos>`: what the model reads. `[residues + 2]`
    pub fn tokens(&self) -> Vec<u32> {
        with_ends(self.residues.iter().copied())
    }

    /// The residues as text, one letter per residue and `<mask>` for masks.
    pub fn sequence(&self) -> String {
        self.residues.iter().map(|&t| VOCAB[t as usize]).collect()
    }
}

/// Where a bad input was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    /// 1-based record number in the input.
    pub number: usize,
    pub header: String,
}

impl fmt::Display for RecordRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.header.is_empty() {
            write!(f, "record {}", self.number)
        } else {
            write!(f, "record {} (>{})", self.number, self.header)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error(
        "{record}: '{text}' at residue {position} (line {line}, column {column}) is not in the ESM alphabet \
         (amino-acid letters, X, B, U, Z, O, '.', '-', <mask>)"
    )]
    BadCharacter { record: RecordRef, text: String, position: usize, line: usize, column: usize },
    #[error("{record} (line {line}) has no residues")]
    EmptyRecord { record: RecordRef, line: usize },
    #[error("the input holds no sequence: paste residues or a FASTA record ('>name' then residues)")]
    NoRecord,
    #[error(
        "{record} has {length} residues; ESM-2 reads at most {max} (1,024 positions less <cls> and <eos>). \
         Split the sequence: plmscope never truncates silently"
    )]
    TooLong { record: RecordRef, length: usize, max: usize },
}

fn token_of(text: &str) -> Option<u32> {
    VOCAB.iter().position(|&v| v == text).map(|i| i as u32)
}

/// Reads FASTA text (or one bare sequence) into validated records.
///
/// Records may span wrapped lines; blank lines are skipped; `;` comment lines are ignored.
pub fn parse_fasta(text: &str) -> Result<Vec<Record>, InputError> {
    let mut records = Vec::new();
    let mut current: Option<(RecordRef, usize, Vec<u32>, bool)> = None; // (ref, header line, residues, ended by *)
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        if let Some(header) = line.strip_prefix('>') {
            if let Some(done) = current.take() {
                records.push(finish(done)?);
            }
            let r = RecordRef { number: records.len() + 1, header: header.trim().to_string() };
            current = Some((r, line_no, Vec::new(), false));
            continue;
        }
        if line.trim().is_empty() || line.starts_with(';') {
            continue;
        }
        let (r, _, residues, stopped) = current.get_or_insert_with(|| {
            (RecordRef { number: records.len() + 1, header: String::new() }, line_no, Vec::new(), false)
        });
        let mut chars = line.char_indices().peekable();
        while let Some((col, c)) = chars.next() {
            if c.is_whitespace() {
                continue;
            }
            let bad = |text: String| InputError::BadCharacter {
                record: r.clone(),
                text,
                position: residues.len() + 1,
                line: line_no,
                column: col + 1,
            };
            if *stopped {
                return Err(bad("*".into()));
            }
            if c == '*' {
                *stopped = true;
                continue;
            }
            let token = if c == '<' {
                let rest = &line[col..];
                let end = rest.find('>').ok_or_else(|| bad(rest.to_string()))?;
                let name = &rest[..=end];
                let t = token_of(&name.to_ascii_lowercase())
                    .filter(|&t| t == MASK || t == 3)
                    .ok_or_else(|| bad(name.to_string()))?;
                for _ in 0..name.chars().count() - 1 {
                    chars.next();
                }
                t
            } else {
                let up = c.to_ascii_uppercase().to_string();
                token_of(&up).filter(|_| c.is_ascii_alphabetic() || c == '.' || c == '-').ok_or_else(|| bad(c.to_string()))?
            };
            residues.push(token);
        }
    }
    if let Some(done) = current.take() {
        records.push(finish(done)?);
    }
    if records.is_empty() {
        return Err(InputError::NoRecord);
    }
    Ok(records)
}

fn finish((record, line, residues, _): (RecordRef, usize, Vec<u32>, bool)) -> Result<Record, InputError> {
    if residues.is_empty() {
        return Err(InputError::EmptyRecord { record, line });
    }
    if residues.len() > MAX_RESIDUES {
        return Err(InputError::TooLong { record, length: residues.len(), max: MAX_RESIDUES });
    }
    Ok(Record { header: record.header, residues })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_records_wrapped_blank_lines_lower_case_and_stop() {
        let recs = parse_fasta(">a desc\nMKT\nay\n\n>b\nG<mask>c*\n").unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].header, "a desc");
        assert_eq!(recs[0].sequence(), "MKTAY");
        assert_eq!(recs[1].sequence(), "G<mask>C");
        assert_eq!(recs[1].tokens(), vec![CLS, 6, MASK, 23, EOS]);
    }

    #[test]
    fn bare_sequence_is_one_record() {
        let recs = parse_fasta("  MKTA YIAK\n").unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].header, "");
        assert_eq!(recs[0].sequence(), "MKTAYIAK");
    }

    #[test]
    fn bad_character_names_record_position_line_and_column() {
        let err = parse_fasta(">one\nMK\n>two\nMKT\nAJ\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "record 2 (>two): 'J' at residue 5 (line 5, column 2) is not in the ESM alphabet \
             (amino-acid letters, X, B, U, Z, O, '.', '-', <mask>)"
        );
        let err = parse_fasta("MK1").unwrap_err().to_string();
        assert!(err.starts_with("record 1: '1' at residue 3 (line 1, column 3)"), "{err}");
        let err = parse_fasta("MK<cls>A").unwrap_err().to_string();
        assert!(err.starts_with("record 1: '<cls>' at residue 3"), "{err}");
        let err = parse_fasta("MK*A").unwrap_err().to_string();
        assert!(err.starts_with("record 1: '*' at residue 3"), "{err}");
    }

    #[test]
    fn empty_record_and_no_record() {
        let err = parse_fasta(">x\nMK\n>empty one\n\n>z\nA").unwrap_err();
        assert_eq!(err.to_string(), "record 2 (>empty one) (line 3) has no residues");
        assert_eq!(parse_fasta("\n\n  \n").unwrap_err(), InputError::NoRecord);
        assert!(parse_fasta("").unwrap_err().to_string().contains("holds no sequence"));
    }

    #[test]
    fn too_long_is_refused_not_truncated() {
        let ok = "A".repeat(MAX_RESIDUES);
        assert_eq!(parse_fasta(&ok).unwrap()[0].residues.len(), MAX_RESIDUES);
        let err = parse_fasta(&format!(">big\n{}A", ok)).unwrap_err().to_string();
        assert!(err.contains("record 1 (>big) has 1023 residues; ESM-2 reads at most 1022"), "{err}");
        assert!(err.contains("never truncates"), "{err}");
    }
}
