"""One module per command: parse the options, call one library function, render the result."""
