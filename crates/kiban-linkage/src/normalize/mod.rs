//! Normalization of Japanese identity data: names, birth dates, addresses, postal codes,
//! insurance identifiers and sex.

pub mod address;
pub mod date;
pub mod insurance;
pub mod name;
pub mod sex;
pub mod surnames;
pub mod text;
pub mod variants;
