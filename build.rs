//! Embeds the FHIR facts of `fhir-profiles/r4/` into the binary: one entry per resource file, so
//! adding a resource type is adding its definition file.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fhir-profiles/r4");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut out = String::new();
    // Served resource types, and the other R4 resource types (validation of contained resources).
    for (constant, dir) in [("RESOURCES", "resources"), ("STRUCTURES", "structures")] {
        let dir = root.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("readable entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        writeln!(out, "pub static {constant}: &[(&str, &str)] = &[").unwrap();
        for file in &files {
            println!("cargo:rerun-if-changed={}", file.display());
            let name = file.file_stem().unwrap().to_string_lossy();
            writeln!(out, "    ({name:?}, include_str!({:?})),", file.display().to_string()).unwrap();
        }
        out.push_str("];\n");
    }
    for (constant, file) in [
        ("DATATYPES", "datatypes.json"),
        ("SEARCH_PARAMETERS", "search-parameters.json"),
        ("PATIENT_COMPARTMENT", "compartments/Patient.json"),
    ] {
        let path = root.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(out, "pub static {constant}: &str = include_str!({:?});", path.display().to_string()).unwrap();
    }
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR is set");
    std::fs::write(Path::new(&out_dir).join("profiles.rs"), out).expect("write profiles.rs");
    // The CapabilityStatement's `date` is the build date (a valid FHIR dateTime).
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| s.len() == 10)
        .unwrap_or_else(|| "2026-01-01".into());
    println!("cargo:rustc-env=KILN_BUILD_DATE={date}");
}
