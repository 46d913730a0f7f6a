//! The DNSSEC resolver of the live subcommands (`daneverify DOMAIN`, `policy DOMAIN`): the
//! options `--resolver ADDR:PORT`, `--trust-anchor FILE`, `--probe-name NAME`, and the
//! dane-verify [`DaneResolver`] they give, following dane-verify's [`ResolverConfig`] rules (the
//! relay's `[delivery.resolver]`).
//!
//! `--resolver` alone trusts that loopback resolver's AD bit (`trust-ad`); otherwise DNSSEC is
//! validated in-process (the relay's default, `validating`), from `--trust-anchor` or the IANA
//! root anchors built in, asking `--resolver` or the system's nameservers (`/etc/resolv.conf`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dane_verify::resolver::{DaneResolver, Limits, ResolverConfig, ResolverMode, Validation};
use serde_json::{Value, json};

/// Per-query timeout of the live subcommands.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The resolver options, shared by the live subcommands.
#[derive(clap::Args)]
pub(crate) struct ResolverArgs {
    /// Live: the DNS resolver, ADDR:PORT (default: the system's, validating in-process).
    #[arg(long)]
    pub(crate) resolver: Option<SocketAddr>,
    /// Live: DNSKEY trust-anchor file for in-process validation (default: the root anchors
    /// built in).
    #[arg(long)]
    pub(crate) trust_anchor: Option<PathBuf>,
    /// Live: a signed name whose SOA must validate before DNSSEC statuses are believed.
    #[arg(long, default_value = ".")]
    pub(crate) probe_name: String,
}

/// The resolver configuration and validation read from the options (files read, no network).
pub(crate) struct LiveResolver {
    config: ResolverConfig,
    validation: Validation,
}

impl ResolverArgs {
    /// The resolver configuration for these options, with its [`Validation`]; reads the
    /// trust-anchor file and the system's nameservers, never the network.
    pub(crate) fn prepare(&self) -> Result<LiveResolver, Box<dyn std::error::Error>> {
        let mut config = ResolverConfig::default();
        config.address = self.resolver;
        config.trust_anchor.clone_from(&self.trust_anchor);
        config.probe_name.clone_from(&self.probe_name);
        if self.resolver.is_some() && self.trust_anchor.is_none() {
            config.mode = ResolverMode::TrustAd;
        }
        let validation = config.validation()?.ok_or("the live check needs DNSSEC")?;
        Ok(LiveResolver { config, validation })
    }
}

impl LiveResolver {
    /// The dane-verify resolver (not probed yet: call [`DaneResolver::probe`] with
    /// [`Self::probe_name`]). Build it inside the tokio runtime.
    pub(crate) fn resolver(&self) -> Result<DaneResolver, dane_verify::Error> {
        let limits = Limits {
            timeout: QUERY_TIMEOUT,
            ..Limits::default()
        };
        DaneResolver::new(self.validation.clone(), limits)
    }

    /// The name the validation probe asks for (`--probe-name`).
    pub(crate) fn probe_name(&self) -> &str {
        &self.config.probe_name
    }

    /// `{"mode", "upstream", "trust_anchor"}` of the resolver used.
    pub(crate) fn json(&self) -> Value {
        let c = &self.config;
        let (upstream, trust_anchor): (Vec<String>, _) = match c.mode {
            ResolverMode::TrustAd => (c.address.iter().map(ToString::to_string).collect(), None),
            _ => (
                c.upstreams().0.iter().map(ToString::to_string).collect(),
                Some(c.anchor_source()),
            ),
        };
        json!({"mode": c.mode.as_str(), "upstream": upstream, "trust_anchor": trust_anchor})
    }
}
