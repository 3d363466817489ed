-- The schema of a daf_butler QuantumBackedButler SQLite file, as lsst-daf-butler 30.2026.4300 creates it
-- (sqlite_master.sql of QuantumBackedButler.from_predicted(..., filename=...)), one statement per block.

CREATE TABLE dataset_location (
	datastore_name TEXT NOT NULL,
	dataset_id CHAR(32) NOT NULL,
	PRIMARY KEY (datastore_name, dataset_id)
);

CREATE TABLE dataset_location_trash (
	dataset_id CHAR(32) NOT NULL,
	datastore_name TEXT NOT NULL,
	PRIMARY KEY (dataset_id, datastore_name)
);

CREATE TABLE file_datastore_records (
	dataset_id CHAR(32) NOT NULL,
	path TEXT NOT NULL,
	formatter TEXT NOT NULL,
	storage_class TEXT NOT NULL,
	component VARCHAR(32) NOT NULL,
	checksum TEXT,
	file_size BIGINT,
	PRIMARY KEY (dataset_id, component),
	CONSTRAINT file_datastore_records_len_component CHECK (length("component")<=32 AND length("component")>=1)
);

CREATE INDEX file_datastore_records_idx_path ON file_datastore_records (path);

CREATE TABLE opaque_meta (
	table_name TEXT NOT NULL,
	PRIMARY KEY (table_name)
);
