"""The pure core: parsed spec, observations and decisions. No kopf, kubernetes or network imports."""
