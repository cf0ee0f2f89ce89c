//! One rename table per weight format, each mapping the format's tensor names to the hub names
//! of `facebook/esm2_*` `model.safetensors` (which the model's blocks ask for).

/// transformers 5's `save_pretrained()` → hub. It writes LayerNorm parameters under their old
/// TensorFlow names and may keep buffers and the tied decoder.
const TRANSFORMERS: &[(&str, &str)] = &[
    ("LayerNorm.gamma", "LayerNorm.weight"),
    ("LayerNorm.beta", "LayerNorm.bias"),
    ("lm_head.decoder.bias", "lm_head.bias"),
];

/// fair-esm `ESM2` state dict → hub. Applied in order, as substring replacements, after the
/// `encoder.sentence_encoder.` / `encoder.` prefix of some versions is stripped.
const FAIR_ESM: &[(&str, &str)] = &[
    ("embed_tokens.", "esm.embeddings.word_embeddings."),
    ("emb_layer_norm_after.", "esm.encoder.emb_layer_norm_after."),
    ("contact_head.", "esm.contact_head."),
    ("layers.", "esm.encoder.layer."),
    ("self_attn.q_proj.", "attention.self.query."),
    ("self_attn.k_proj.", "attention.self.key."),
    ("self_attn.v_proj.", "attention.self.value."),
    ("self_attn.out_proj.", "attention.output.dense."),
    ("self_attn_layer_norm.", "attention.LayerNorm."),
    ("fc1.", "intermediate.dense."),
    ("fc2.", "output.dense."),
    ("final_layer_norm.", "LayerNorm."),
];

/// Names no format needs: buffers the model recomputes and weights tied to the embeddings.
fn ignored(name: &str) -> bool {
    name.ends_with("inv_freq")
        || name.ends_with("position_ids")
        || name == "lm_head.decoder.weight"
        || name == "lm_head.weight"
}

fn apply(name: &str, table: &[(&str, &str)]) -> String {
    table.iter().fold(name.to_string(), |n, (from, to)| n.replace(from, to))
}

/// The hub name of a hub or transformers-5 `model.safetensors` tensor; `None` for one no model needs.
pub fn transformers_name(name: &str) -> Option<String> {
    (!ignored(name)).then(|| apply(name, TRANSFORMERS))
}

/// The hub name of a fair-esm ESM-2 state-dict tensor; `None` for one no model needs.
pub fn fair_esm_name(name: &str) -> Option<String> {
    let name = name.strip_prefix("encoder.sentence_encoder.").or_else(|| name.strip_prefix("encoder.")).unwrap_or(name);
    // `lm_head.*` keeps its name; everything else goes through the table.
    (!ignored(name)).then(|| if name.starts_with("lm_head.") { name.to_string() } else { apply(name, FAIR_ESM) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_esm_names_map_to_hub_names() {
        let names = [
            "encoder.sentence_encoder.embed_tokens.weight",
            "layers.3.self_attn.q_proj.weight",
            "layers.3.self_attn.out_proj.bias",
            "layers.3.self_attn_layer_norm.weight",
            "layers.3.final_layer_norm.bias",
            "layers.3.fc1.weight",
            "layers.3.fc2.bias",
            "layers.3.self_attn.rot_emb.inv_freq",
            "emb_layer_norm_after.weight",
            "lm_head.weight",
            "lm_head.layer_norm.bias",
            "lm_head.bias",
        ];
        let mut got: Vec<String> = names.iter().filter_map(|n| fair_esm_name(n)).collect();
        got.sort();
        assert_eq!(
            got,
            [
                "esm.embeddings.word_embeddings.weight",
                "esm.encoder.emb_layer_norm_after.weight",
                "esm.encoder.layer.3.LayerNorm.bias",
                "esm.encoder.layer.3.attention.LayerNorm.weight",
                "esm.encoder.layer.3.attention.output.dense.bias",
                "esm.encoder.layer.3.attention.self.query.weight",
                "esm.encoder.layer.3.intermediate.dense.weight",
                "esm.encoder.layer.3.output.dense.bias",
                "lm_head.bias",
                "lm_head.layer_norm.bias",
            ]
        );
    }

    #[test]
    fn transformers5_names_map_to_hub_names() {
        let names = [
            "esm.encoder.layer.0.attention.LayerNorm.gamma",
            "esm.encoder.layer.0.LayerNorm.beta",
            "esm.encoder.layer.0.attention.self.rotary_embeddings.inv_freq",
            "esm.embeddings.position_ids",
            "lm_head.decoder.weight",
        ];
        let mut got: Vec<String> = names.iter().filter_map(|n| transformers_name(n)).collect();
        got.sort();
        assert_eq!(got, ["esm.encoder.layer.0.LayerNorm.bias", "esm.encoder.layer.0.attention.LayerNorm.weight"]);
    }
}
