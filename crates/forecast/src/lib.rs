//! Capacity forecasting. Pure: numbers in, forecasts and plans out.
//!
//! - [`model`]: point forecasts with 80% / 95% intervals (MSTL + AutoETS on
//!   the log and linear scales, seasonality found by the M4 autocorrelation
//!   test, blended with seasonal naive near the origin).
//! - [`trend`]: the seed's trend label and a Theil–Sen slope with its
//!   interval.
//! - [`capacity`]: time to exhaustion, rightsizing, autoscaler proposals.
//! - [`series`]: a timestamped series to a regular grid, then all of the
//!   above.

pub mod capacity;
pub mod model;
pub mod plan;
pub mod series;
pub mod trend;

pub use capacity::{Autoscaling, Exhaustion, Rightsizing, autoscale, exhaustion, rightsize};
pub use model::{Forecast, ForecastError, Method, forecast, is_seasonal, seasonal_naive};
pub use plan::{PlanParams, build_plan};
pub use series::{SeriesError, SeriesForecast, analyze};
pub use trend::{RobustSlope, TrendLabel, seed_label, theil_sen};
