"""Facts kept in memory with fixed-size structures: time-bucket rings and quantile sketches."""
