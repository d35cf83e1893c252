module cairn.local/lab/argosay

go 1.26.0
