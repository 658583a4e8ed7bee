//! Capacity forecasting. Pure: numbers in, forecasts and plans out.
//!
//! - [`model`]: point forecasts with 80% / 95% intervals (MSTL + AutoETS,
//!   seasonality found by the M4 autocorrelation test).

pub mod model;

pub use model::{Forecast, ForecastError, Method, forecast, is_seasonal, seasonal_naive};
