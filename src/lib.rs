//! resnet-audit: audits published ResNet results by re-running them under explicit test
//! protocols. See ARCHITECTURE.md for the map of modules.

pub mod audit;
pub mod dataset;
pub mod decode;
pub mod demo;
pub mod device;
pub mod engine;
pub mod eval;
pub mod experiment;
pub mod fsio;
pub mod gpu_check;
pub mod import;
pub mod inspect;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod progress;
pub mod protocol;
pub mod report;
pub mod scoring;
pub mod shard;
pub mod slurm;
pub mod store;
pub mod train;
pub mod transform;
pub mod version;
pub mod weights;
pub mod yaml;
