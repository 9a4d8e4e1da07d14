"""What every servicemonth service imports: configuration, events, the bus, databases, the clock."""
