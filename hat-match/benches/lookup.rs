#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! Indexed matcher vs the linear-scan reference, in the same run, on tables of 1k/10k/100k
//! mixed entries (IPv4/IPv6 CIDRs and ranges, host names, suffixes) spread over 50 groups.
//!
//! `cargo bench -p hat-match --bench lookup -- --warm-up-time 1 --measurement-time 3`
//!
//! Memory per entry is measured with a counting global allocator (`cap`) and printed before
//! the benchmarks.

use std::alloc::System;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use cap::Cap;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hat_match::{
    Behavior, Facts, HostAccessTable, ListenerTls, MailFlowPolicy, SenderEntry, SenderGroup,
    reference,
};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const GROUPS: usize = 50;
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const CLIENTS: usize = 1024;

/// A small deterministic generator (xorshift64*), so every run benchmarks the same tables.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn entry_text(rng: &mut Rng, i: usize) -> String {
    match rng.below(6) {
        0 => {
            let len = 16 + rng.below(17) as u8;
            let net = ipnet::Ipv4Net::new(Ipv4Addr::from(rng.next() as u32), len).unwrap();
            net.trunc().to_string()
        }
        1 => {
            let a = Ipv4Addr::from(rng.next() as u32);
            let last = a.octets()[3].saturating_add(rng.below(50) as u8);
            format!("{a}-{last}")
        }
        2 => {
            let len = 32 + rng.below(97) as u8;
            let addr = Ipv6Addr::from(
                0x2000_0000_0000_0000_0000_0000_0000_0000u128
                    | (u128::from(rng.next()) << 64)
                    | u128::from(rng.next()),
            );
            ipnet::Ipv6Net::new(addr, len).unwrap().trunc().to_string()
        }
        3 => {
            let lo = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128 | (u128::from(rng.next()) << 16);
            format!(
                "{}-{}",
                Ipv6Addr::from(lo),
                Ipv6Addr::from(lo + u128::from(rng.below(1 << 16)))
            )
        }
        4 => format!("mx{i}.d{}.example", rng.below(5000)),
        _ => format!(".d{}.example{}", i, rng.below(100)),
    }
}

fn policies() -> Vec<MailFlowPolicy> {
    vec![
        MailFlowPolicy::new("ACCEPTED", Behavior::Accept)
            .unwrap()
            .with_tls(ListenerTls::Preferred),
        MailFlowPolicy::new("BLOCKED", Behavior::Reject).unwrap(),
        MailFlowPolicy::new("MONITOR", Behavior::Continue).unwrap(),
    ]
}

/// `entries` mixed entries over 49 groups, plus a final `ALL` group (50 groups).
fn groups(entries: usize) -> Vec<SenderGroup> {
    let mut rng = Rng(0x5eed_0000 + entries as u64);
    let mut senders: Vec<Vec<SenderEntry>> = vec![Vec::new(); GROUPS - 1];
    for i in 0..entries {
        let text = entry_text(&mut rng, i);
        senders[rng.below(GROUPS as u64 - 1) as usize].push(SenderEntry::parse(&text).unwrap());
    }
    let mut groups: Vec<SenderGroup> = senders
        .into_iter()
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(g, s)| {
            let policy = match g % 10 {
                0 => "MONITOR",
                1 | 2 => "BLOCKED",
                _ => "ACCEPTED",
            };
            SenderGroup::new(&format!("G{g}"), g as u32 + 1, policy, s).unwrap()
        })
        .collect();
    groups.push(SenderGroup::new("ALL", 1000, "ACCEPTED", vec!["ALL".parse().unwrap()]).unwrap());
    groups
}

/// Clients: half taken from the table's address entries, half random; v4 and v6.
fn clients(table: &HostAccessTable) -> Vec<IpAddr> {
    let mut rng = Rng(42);
    let addrs: Vec<IpAddr> = table
        .groups()
        .iter()
        .flat_map(|g| g.senders())
        .filter_map(|e| e.ip_interval().map(|(lo, _)| lo))
        .collect();
    (0..CLIENTS)
        .map(|i| match i % 4 {
            0 | 1 => addrs[rng.below(addrs.len() as u64) as usize],
            2 => IpAddr::V4(Ipv4Addr::from(rng.next() as u32)),
            _ => IpAddr::V6(Ipv6Addr::from(u128::from(rng.next()) << 64)),
        })
        .collect()
}

/// Clients with one forward-confirmed PTR name, taken from host-name entries of the table.
fn ptr_clients(table: &HostAccessTable) -> Vec<Facts> {
    let mut rng = Rng(7);
    let names: Vec<String> = table
        .groups()
        .iter()
        .flat_map(|g| g.senders())
        .filter_map(|e| match e.kind() {
            hat_match::EntryKind::Host(h) => Some(h.to_string()),
            hat_match::EntryKind::Suffix(s) => Some(format!("mail.{s}")),
            _ => None,
        })
        .collect();
    (0..CLIENTS)
        .map(|i| {
            let ip = IpAddr::V4(Ipv4Addr::from(rng.next() as u32));
            let mut facts = Facts::new(ip);
            let name = if i % 2 == 0 {
                names[rng.below(names.len() as u64) as usize].clone()
            } else {
                format!("host{i}.unlisted.example")
            };
            facts.add_ptr(&name, [ip]).unwrap();
            facts
        })
        .collect()
}

fn memory_report() {
    for n in SIZES {
        let before = ALLOC.allocated();
        let groups = groups(n);
        let with_groups = ALLOC.allocated();
        let start = Instant::now();
        let table = HostAccessTable::new(policies(), groups).unwrap();
        let build = start.elapsed();
        let after = ALLOC.allocated();
        eprintln!(
            "memory n={n}: table {:.0} B/entry (configured entries {:.0} B/entry + index {:.0} B/entry); one build {:.1} ms",
            (after - before) as f64 / n as f64,
            (with_groups - before) as f64 / n as f64,
            (after - with_groups) as f64 / n as f64,
            build.as_secs_f64() * 1e3,
        );
        drop(table);
    }
}

fn bench(c: &mut Criterion) {
    memory_report();
    for n in SIZES {
        let table = HostAccessTable::new(policies(), groups(n)).unwrap();
        let ips = clients(&table);
        let facts: Vec<Facts> = ips.iter().map(|ip| Facts::new(*ip)).collect();
        let ptr = ptr_clients(&table);
        // Sanity: both matchers agree on every client used here.
        for f in facts.iter().chain(&ptr) {
            assert_eq!(table.matches(f), reference::matches(&table, f));
        }
        let with_continued = facts
            .iter()
            .filter(|f| !table.matches(f).continued().is_empty())
            .count();
        eprintln!("n={n}: {with_continued} of {CLIENTS} IP-only clients match `continue` groups");

        let mut g = c.benchmark_group("ip_only");
        let mut i = 0;
        g.bench_with_input(BenchmarkId::new("indexed", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % CLIENTS;
                black_box(table.matches(black_box(&facts[i])).order())
            })
        });
        // Baseline for the allocation-free verdict: the same lookup plus collecting the
        // `continue` matches into a Vec, as `HatVerdict` did before they became a borrowed view.
        g.bench_with_input(BenchmarkId::new("indexed_vec_continued", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % CLIENTS;
                let v = table.matches(black_box(&facts[i]));
                let continued: Vec<_> = v.continued().iter().collect();
                black_box((v.order(), continued))
            })
        });
        g.bench_with_input(BenchmarkId::new("linear", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % CLIENTS;
                black_box(reference::matches(&table, black_box(&facts[i])).order())
            })
        });
        g.finish();

        let mut g = c.benchmark_group("with_ptr");
        g.bench_with_input(BenchmarkId::new("indexed", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % CLIENTS;
                black_box(table.matches(black_box(&ptr[i])).order())
            })
        });
        g.bench_with_input(BenchmarkId::new("linear", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % CLIENTS;
                black_box(reference::matches(&table, black_box(&ptr[i])).order())
            })
        });
        g.finish();

        let mut g = c.benchmark_group("plan");
        g.bench_with_input(BenchmarkId::new("indexed", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % CLIENTS;
                black_box(table.plan(black_box(ips[i])).needs_ptr())
            })
        });
        g.finish();

        let mut g = c.benchmark_group("build");
        g.sample_size(10);
        let source = groups(n);
        g.bench_with_input(BenchmarkId::new("index", n), &n, |b, _| {
            b.iter_batched(
                || source.clone(),
                |groups| HostAccessTable::new(policies(), groups).unwrap(),
                criterion::BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
