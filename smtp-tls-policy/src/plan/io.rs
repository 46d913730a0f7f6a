//! The plan in the tokio STARTTLS driver (feature `tokio`): [`crate::io::negotiate`] settings
//! whose verifier and DANE check are the plan's.

use std::sync::Arc;

use super::HopPlan;
use crate::chain::TrustAnchors;
use crate::io::ClientSettings;

impl HopPlan {
    /// Settings for [`crate::io::negotiate`] with [`Self::attempt`]: the plan's server name
    /// (SNI), and one [`super::PlanVerifier`] per call as both the PKIX verifier (its handshake
    /// result reports PKIX exactly, and the driver records it without aborting) and the DANE
    /// check (the DANE outcome recorded in the same verification: PKIX and DANE run once).
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
        self.requirement?;
        let name = self.server_name.clone()?;
        let verifier = Arc::new(self.verifier(anchors).reporting_pkix());
        Some(ClientSettings::new(ehlo_name, name, verifier.clone()).with_dane(verifier))
    }
}
