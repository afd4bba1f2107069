#!/usr/bin/perl
# Build a tiny GeoLite2-Country-format MaxMind DB for the guard's tests.
# Usage: mkmmdb.pl OUT.mmdb NETWORK=CC [NETWORK=CC ...]
# Needs Debian's libmaxmind-db-writer-perl (MaxMind::DB::Writer::Tree).
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my $out = shift @ARGV or die "usage: $0 OUT.mmdb NETWORK=CC ...\n";
my %types = (country => 'map', registered_country => 'map', iso_code => 'utf8_string');
my $tree = MaxMind::DB::Writer::Tree->new(
	ip_version => 6,
	record_size => 24,
	database_type => 'GeoLite2-Country',
	languages => ['en'],
	description => { en => 'sipwarden guard test DB' },
	map_key_type_callback => sub { $types{ $_[0] } },
	alias_ipv6_to_ipv4 => 1,
	# Test networks are documentation/reserved ranges: keep them.
	remove_reserved_networks => 0,
);
for my $arg (@ARGV) {
	my ($net, $cc) = split /=/, $arg, 2;
	die "bad argument $arg\n" unless defined $cc && length $cc == 2;
	$tree->insert_network($net, { country => { iso_code => $cc } });
}
open my $fh, '>:raw', $out or die "$out: $!\n";
$tree->write_tree($fh);
close $fh or die "$out: $!\n";
