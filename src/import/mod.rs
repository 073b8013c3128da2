pub mod pytorch;
pub mod torch7;
