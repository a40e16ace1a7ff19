package server

import (
	"google.golang.org/grpc/health/grpc_health_v1"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

// Listener names the listeners an RPC is served on.
type Listener string

// Listeners.
const (
	Internal Listener = "internal" // the internal gRPC listener and its HTTP gateway
	Vendor   Listener = "vendor"   // the vendor HTTP listener
	Both     Listener = "both"     // health checks
)

// Rule says who may call one RPC, and where.
type Rule struct {
	// Listener is where the RPC may be called; a call arriving elsewhere is refused.
	Listener Listener
	// Public methods need no credential (health checks).
	Public bool
	// Roles that may call the method. Empty and not Public: nobody.
	Roles []vault.Role
}

// Allows reports whether role may call the method.
func (r Rule) Allows(role vault.Role) bool {
	if r.Public {
		return true
	}
	for _, x := range r.Roles {
		if x == role {
			return true
		}
	}
	return false
}

// Policy is the authorization table, keyed by full gRPC method name. Methods absent from it
// are refused for everyone: adding an RPC without adding it here makes it unusable, and a test
// fails.
//
// With dev set, gRPC server reflection is public too (it is only served in dev mode).
func Policy(dev bool) map[string]Rule {
	admin, auditor := vault.RoleAdmin, vault.RoleAuditor
	allInternal := []vault.Role{admin, vault.RoleTokenizer, vault.RoleDetokenizer, auditor}
	in := func(roles ...vault.Role) Rule { return Rule{Listener: Internal, Roles: roles} }
	p := map[string]Rule{
		tvpb.TokenService_Tokenize_FullMethodName:              in(admin, vault.RoleTokenizer),
		tvpb.TokenService_Detokenize_FullMethodName:            in(admin, vault.RoleDetokenizer),
		tvpb.TokenService_DeleteTokens_FullMethodName:          in(admin),
		tvpb.TokenService_EraseSubject_FullMethodName:          in(admin),
		tvpb.KeyService_GetKeyStatus_FullMethodName:            in(admin, auditor),
		tvpb.KeyService_RotateKey_FullMethodName:               in(admin),
		tvpb.KeyService_DisableKey_FullMethodName:              in(admin),
		tvpb.KeyService_EnableKey_FullMethodName:               in(admin),
		tvpb.KeyService_DestroyKey_FullMethodName:              in(admin),
		tvpb.KeyService_Backup_FullMethodName:                  in(admin),
		tvpb.RecordService_TokenizeRecords_FullMethodName:      in(admin, vault.RoleTokenizer),
		tvpb.RecordService_DetokenizeRecords_FullMethodName:    in(admin, vault.RoleDetokenizer),
		tvpb.TextService_TokenizeText_FullMethodName:           in(admin, vault.RoleTokenizer),
		tvpb.TextService_DetokenizeText_FullMethodName:         in(admin, vault.RoleDetokenizer),
		tvpb.TemplateService_CreateTemplate_FullMethodName:     in(admin),
		tvpb.TemplateService_ListTemplates_FullMethodName:      in(allInternal...),
		tvpb.CredentialService_CreateCredential_FullMethodName: in(admin),
		tvpb.CredentialService_ListCredentials_FullMethodName:  in(admin, auditor),
		tvpb.CredentialService_RevokeCredential_FullMethodName: in(admin),
		tvpb.CredentialService_RotateCredential_FullMethodName: in(admin),
		tvpb.GrantService_CreateGrant_FullMethodName:           in(admin),
		tvpb.GrantService_ListGrants_FullMethodName:            in(admin, auditor),
		tvpb.GrantService_GetGrant_FullMethodName:              in(admin, auditor),
		tvpb.GrantService_CreateCanary_FullMethodName:          in(admin),
		tvpb.GrantService_RevokeGrant_FullMethodName:           in(admin),
		tvpb.AuditService_ListAuditEvents_FullMethodName:       in(admin, auditor),
		tvpb.AuditService_ExportAudit_FullMethodName:           in(admin, auditor),
		tvpb.AuditService_GetAuditPublicKey_FullMethodName:     in(admin, auditor),
		tvpb.AuditService_GetAuditEvent_FullMethodName:         in(admin, auditor),
		tvpb.AuditService_GetAuditStats_FullMethodName:         in(admin, auditor),
		tvpb.AuditService_GetAuditStatus_FullMethodName:        in(admin, auditor),
		tvpb.VendorService_VendorDetokenize_FullMethodName:     {Listener: Vendor, Roles: []vault.Role{vault.RoleVendor}},
		grpc_health_v1.Health_Check_FullMethodName:             {Listener: Both, Public: true},
		grpc_health_v1.Health_Watch_FullMethodName:             {Listener: Both, Public: true},
		grpc_health_v1.Health_List_FullMethodName:              {Listener: Both, Public: true},
	}
	if dev {
		p["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"] = Rule{Listener: Internal, Public: true}
		p["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"] = Rule{Listener: Internal, Public: true}
	}
	return p
}

// ConsoleMethods classifies every method of the Policy table for web console sessions (a
// browser signed in at /ui/): true for the methods a session may call, false for those it may
// never call, whatever its role. A session never calls a method that returns a value
// (detokenize in every form) or the vault's contents (Backup), nor one that takes values in
// (tokenize: the console has no such page). A method absent from the table is refused to
// sessions (deny by default); a test fails when a Policy method is missing here. The role
// rules of Policy still apply to the methods marked true: an auditor's session only reads.
func ConsoleMethods() map[string]bool {
	return map[string]bool{
		tvpb.TokenService_Tokenize_FullMethodName:                        false, // takes values
		tvpb.TokenService_Detokenize_FullMethodName:                      false, // returns values
		tvpb.TokenService_DeleteTokens_FullMethodName:                    true,  // erasure page
		tvpb.TokenService_EraseSubject_FullMethodName:                    true,  // erasure page
		tvpb.KeyService_GetKeyStatus_FullMethodName:                      true,
		tvpb.KeyService_RotateKey_FullMethodName:                         true,
		tvpb.KeyService_DisableKey_FullMethodName:                        true,
		tvpb.KeyService_EnableKey_FullMethodName:                         true,
		tvpb.KeyService_DestroyKey_FullMethodName:                        true,
		tvpb.KeyService_Backup_FullMethodName:                            false, // returns the vault's contents
		tvpb.RecordService_TokenizeRecords_FullMethodName:                false, // takes values
		tvpb.RecordService_DetokenizeRecords_FullMethodName:              false, // returns values
		tvpb.TextService_TokenizeText_FullMethodName:                     false, // takes values
		tvpb.TextService_DetokenizeText_FullMethodName:                   false, // returns values
		tvpb.TemplateService_CreateTemplate_FullMethodName:               true,
		tvpb.TemplateService_ListTemplates_FullMethodName:                true,
		tvpb.CredentialService_CreateCredential_FullMethodName:           false, // returns a secret
		tvpb.CredentialService_ListCredentials_FullMethodName:            true,
		tvpb.CredentialService_RevokeCredential_FullMethodName:           true,
		tvpb.CredentialService_RotateCredential_FullMethodName:           false, // returns a secret
		tvpb.GrantService_CreateGrant_FullMethodName:                     true,
		tvpb.GrantService_ListGrants_FullMethodName:                      true,
		tvpb.GrantService_GetGrant_FullMethodName:                        true,
		tvpb.GrantService_CreateCanary_FullMethodName:                    false, // takes a value
		tvpb.GrantService_RevokeGrant_FullMethodName:                     true,
		tvpb.AuditService_ListAuditEvents_FullMethodName:                 true,
		tvpb.AuditService_ExportAudit_FullMethodName:                     true,
		tvpb.AuditService_GetAuditPublicKey_FullMethodName:               true,
		tvpb.AuditService_GetAuditEvent_FullMethodName:                   true,
		tvpb.AuditService_GetAuditStats_FullMethodName:                   true,
		tvpb.AuditService_GetAuditStatus_FullMethodName:                  true,
		tvpb.VendorService_VendorDetokenize_FullMethodName:               false, // returns values
		grpc_health_v1.Health_Check_FullMethodName:                       true,
		grpc_health_v1.Health_Watch_FullMethodName:                       true,
		grpc_health_v1.Health_List_FullMethodName:                        true,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      false,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": false,
	}
}
