//! Per-backend latency and throughput on this machine: put and get of 1 KiB objects (p50, p99),
//! listing 10,000 objects, and 16 MiB transfers.
//!
//! `cargo bench -p ferry-store --bench store`
//!
//! Backends: the folder store on a temporary folder, and the S3 and WebDAV stores against the
//! in-process servers of `ferry-test-kit` on 127.0.0.1.

use std::time::{Duration, Instant};

use ferry_store::s3::Timeouts;
use ferry_store::{ANY_SIZE, FolderStore, MAX_PAGE, S3Store, Store, WebDavStore};

use ferry_test_kit::servers;

const SMALL: usize = 1024;
const SAMPLES: usize = 2000;
const LISTED: usize = 10_000;
const BIG: usize = 16 * 1024 * 1024;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn show(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what:<28} p50 {:>9.1?}  p99 {:>9.1?}",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    );
}

async fn measure(backend: &str, store: &dyn Store) {
    println!("== {backend}");
    let mut puts = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let started = Instant::now();
        store
            .put_new(&format!("ferry/v1/bench/small/{i:06}"), vec![7; SMALL])
            .await
            .expect("put");
        puts.push(started.elapsed());
    }
    show("put 1 KiB (write-once)", puts);
    let mut gets = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let started = Instant::now();
        store
            .get(&format!("ferry/v1/bench/small/{i:06}"), ANY_SIZE)
            .await
            .expect("get");
        gets.push(started.elapsed());
    }
    show("get 1 KiB", gets);

    for i in SAMPLES..LISTED {
        store
            .put_new(&format!("ferry/v1/bench/small/{i:06}"), vec![7; 16])
            .await
            .expect("put");
    }
    let started = Instant::now();
    let mut after: Option<String> = None;
    let mut listed = 0;
    loop {
        let page = store
            .list("ferry/v1/bench/small/", after.as_deref(), MAX_PAGE)
            .await
            .expect("list");
        listed += page.objects.len();
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, LISTED);
    println!("{:<28} {:>9.1?}", "list 10,000 objects", started.elapsed());

    let data = vec![0x5a; BIG];
    let started = Instant::now();
    store
        .put_new("ferry/v1/bench/big", data)
        .await
        .expect("put big");
    let up = started.elapsed();
    let started = Instant::now();
    let back = store
        .get("ferry/v1/bench/big", ANY_SIZE)
        .await
        .expect("get big");
    let down = started.elapsed();
    assert_eq!(back.len(), BIG);
    let rate = |d: Duration| BIG as f64 / d.as_secs_f64() / 1e6;
    println!("{:<28} {:>9.1} MB/s", "put 16 MiB", rate(up));
    println!("{:<28} {:>9.1} MB/s", "get 16 MiB", rate(down));
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = FolderStore::open(dir.path()).expect("folder");
        measure("folder (tempdir on the root filesystem)", &store).await;

        let (_s3, location) = servers::s3().await;
        let store = S3Store::new(&location, servers::credentials(), Timeouts::default());
        measure("S3 (s3s-fs in process, loopback HTTP)", &store).await;

        let (_dav, location) = servers::webdav(0).await;
        let store = WebDavStore::new(
            &location,
            Some(servers::dav_credentials()),
            Timeouts::default(),
        )
        .expect("webdav");
        measure("WebDAV (dav-server in process, loopback HTTP)", &store).await;
    });
}
