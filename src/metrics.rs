//! Error rates with confidence intervals, and paired tests between protocols.
