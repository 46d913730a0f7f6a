//! The plan in the tokio STARTTLS driver (feature `tokio`): [`crate::io::negotiate`] settings
//! whose verifier is the plan's.

use std::sync::Arc;

use super::HopPlan;
use crate::chain::TrustAnchors;
use crate::io::ClientSettings;

impl HopPlan {
    /// Settings for [`crate::io::negotiate`] with [`Self::attempt`]: the plan's server name
    /// (SNI), and one [`super::PlanVerifier`] per call, recording and continuing: it runs PKIX
    /// and DANE once in the handshake and the driver feeds its
    /// [`super::PeerVerdict::handshake_outcome`] to the state machine.
    /// Default timeouts, no client certificate (set them on the result). `None` when no
    /// connection may be made.
    ///
    /// Use the settings for one connection (and its plaintext retry): the recorded verdict is
    /// that connection's.
    pub fn client_settings(
        &self,
        ehlo_name: impl Into<String>,
        anchors: Arc<TrustAnchors>,
    ) -> Option<ClientSettings> {
        self.client_settings_with(ehlo_name, self.verifier(anchors))
    }

    /// As [`Self::client_settings`], with a verifier of this plan that the caller configured
    /// (e.g. [`super::PlanVerifier::at_time`]). The driver sets it to record and continue (the
    /// state machine decides); after the handshake, `settings.verifier.last_verdict()` is the
    /// connection's [`super::PeerVerdict`] (for reports). `None` when no connection may be made.
    pub fn client_settings_with(
        &self,
        ehlo_name: impl Into<String>,
        verifier: super::PlanVerifier,
    ) -> Option<ClientSettings> {
        self.requirement?;
        let name = self.server_name.clone()?;
        Some(ClientSettings::new(ehlo_name, name, verifier))
    }
}
