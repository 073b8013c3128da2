//! Datasets: which image files, with which labels, in which class order.
