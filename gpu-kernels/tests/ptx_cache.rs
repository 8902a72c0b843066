//! The PTX disk cache under concurrency: GPU tests open devices from parallel threads, and
//! several processes may share one cache directory, so many writers can fill the same file at
//! once. A reader must never see a partial file.
//!
//! - `concurrent_cache_writes_leave_only_whole_files` needs nothing: many threads write the
//!   same cache file through [`write_cache_file`] (the step that raced) while others read it.
//! - `concurrent_compiles_into_an_empty_cache_are_whole` compiles every kernel from many
//!   threads at once into an empty cache directory through NVRTC, as `GpuDevice::open` does;
//!   it needs `MATPROOF_NVRTC` (`.ci/run` sets it) and prints one line and passes without.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use matproof_gpu_kernels::nvrtc::{
    NVRTC_ENV, cache_file, cached_ptx, nvrtc, ptx_for, read_cache_file, whole_cache_text, write_cache_file,
};
use matproof_gpu_kernels::sources::{ALL, LEAF_SHA256};

const WRITERS: usize = 8;
const WRITES_EACH: usize = 12;
const READERS: usize = 3;

/// A PTX-like text of about 600 KiB (large enough that a write takes several syscalls),
/// different for every writer and write and recognisable from its first line.
fn content(writer: usize, write: usize) -> String {
    let line = format!("// writer {writer} write {write} {}\n", "x".repeat(60));
    format!("// writer {writer} write {write}\n.version 8.5\n{}", line.repeat(9_000))
}

/// Every entry of `dir` other than the cache file `keep`, which must be whole.
fn leftovers(dir: &Path, keep: &Path) -> Vec<String> {
    let mut others = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path != keep {
            others.push(path.display().to_string());
        }
    }
    others
}

#[test]
fn concurrent_cache_writes_leave_only_whole_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(dir.path().join("ptx").join("kernel-sm80-0123.ptx"));
    let start = Arc::new(Barrier::new(WRITERS + READERS));
    let writing = Arc::new(AtomicBool::new(true));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (file, start, writing) = (file.clone(), start.clone(), writing.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut whole_reads = 0usize;
                while writing.load(Ordering::Relaxed) {
                    // Absent (no writer finished yet) is fine; present must be whole, and be
                    // exactly what one writer wrote.
                    let Ok(text) = std::fs::read_to_string(&*file) else { continue };
                    let ptx = whole_cache_text(&text).unwrap_or_else(|| panic!("partial file: {} bytes", text.len()));
                    let first = ptx.lines().next().unwrap();
                    let ids: Vec<usize> = first.split_whitespace().filter_map(|w| w.parse().ok()).collect();
                    assert_eq!(ptx, content(ids[0], ids[1]), "a mix of writers");
                    whole_reads += 1;
                }
                whole_reads
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (file, start) = (file.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for write in 0..WRITES_EACH {
                    write_cache_file(&file, &content(writer, write)).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    writing.store(false, Ordering::Relaxed);
    let reads: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    let last = read_cache_file(&file).expect("the final file is whole");
    assert!(last.starts_with("// writer "), "{}", &last[..40]);
    assert_eq!(leftovers(file.parent().unwrap(), &file), Vec::<String>::new(), "temporary files left behind");
    println!("{WRITERS} writers x {WRITES_EACH} writes, {READERS} readers: {reads} whole reads, no partial file");
}

#[test]
fn concurrent_compiles_into_an_empty_cache_are_whole() {
    if std::env::var_os(NVRTC_ENV).is_none() {
        println!("skipped: set {NVRTC_ENV} to a libnvrtc to compile concurrently (.ci/run does)");
        return;
    }
    let nvrtc = nvrtc().expect("MATPROOF_NVRTC names a usable NVRTC");
    const THREADS: usize = 6;
    const ARCH: u32 = 80;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (dir, start) = (dir.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                // Each thread walks the kernels from a different one, so compiles of the same
                // kernel and writes of the same file overlap.
                (0..ALL.len())
                    .map(|i| {
                        let source = ALL[(i + thread) % ALL.len()];
                        (source.name, cached_ptx(&source, ARCH, Some(dir.path())).unwrap())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let mut files = 0;
    for source in ALL {
        let expected = nvrtc.compile(source.name, source.source, ARCH).unwrap();
        for (name, ptx) in &results {
            if *name == source.name {
                assert_eq!(*ptx, expected, "{name}: a thread got other PTX");
            }
        }
        let file = cache_file(dir.path(), &source, ARCH, nvrtc.version);
        assert_eq!(read_cache_file(&file).as_deref(), Some(expected.as_str()), "{} is not whole", file.display());
        files += 1;
    }
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries, files, "only the cache files are left (no temporary files)");
    // Through the process-wide entry point, many threads get the one compiled copy.
    let copies: Vec<_> = (0..THREADS)
        .map(|_| std::thread::spawn(|| ptx_for(&LEAF_SHA256, ARCH).unwrap()))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(copies.iter().all(|c| Arc::ptr_eq(c, &copies[0])), "compiled once per process");
    println!("{THREADS} threads x {} kernels into an empty cache: {files} whole files, none partial", ALL.len());
}
