//! resnet-audit: audits published ResNet results by re-running them under explicit test
//! protocols. See ARCHITECTURE.md for the map of modules.

pub mod decode;
pub mod device;
pub mod inspect;
pub mod model;
pub mod transform;
pub mod weights;
