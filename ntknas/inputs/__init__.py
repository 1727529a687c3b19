"""What users type, parsed and checked: value checks, architecture files, selections."""
