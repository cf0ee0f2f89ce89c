//! The zip readers on any bytes: the `.pt` reader and the atlas's zip, each a value or a typed
//! error, within its bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = plmscope::weights::pickle::load_pt(data, "fuzz.pt") {
        let _ = v.into_tensors();
    }
    if let Ok(atlas) = plmscope::analysis::atlas::format::Atlas::from_zip(data) {
        let _ = atlas.files();
    }
});
