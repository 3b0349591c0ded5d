//! The forge in the loop, pure: what the forge's lists say is gone, what to report back for a
//! branch, and how a webhook is checked. The runtime (`controller::forge`) does the talking.

pub mod gone;
pub mod provider;
pub mod report;
pub mod webhook;
