//! The zip readers on any bytes: the `.pt` reader and the atlas's zip, each a value or a typed
//! error, within its bounds.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = plmscope::weights::pt::state_dict(data, "fuzz.pt");
    if let Ok(atlas) = plmscope::analysis::atlas::format::Atlas::from_zip(data) {
        let _ = atlas.files();
    }
});
