//! HTTP API, token auth and the dashboard.
