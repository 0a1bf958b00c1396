"""dpconv plugin for n2p2/RuNNer ``input.data`` files."""
